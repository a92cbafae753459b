// The HTML report (--html OUT on run, check and replay): one self-contained page (no network, opens
// from file://) that steps through a run. Each frame is one step with the state after it: per
// process the VMAs and the page table (a strip over VA and its entries, an entry whose PFNs lie in a
// revoked DMABUF highlighted), per device its BARs, COMMAND and power state, the DMABUFs with status,
// kref and ranges, per thread its operation and the locks it holds. For a counterexample the frames
// are the kernel's steps as swimlanes, one column per thread, the violating step marked. The page
// script is plain DOM code in page.js beside this file, inlined with the data.
import { readFileSync } from 'node:fs';
import { eventText, holdText, pendingText } from '../kernel/sched/sched.ts';
import { taskState, type TaskState } from '../explore/report.ts';
import type { Scenario } from '../scenario/loader.ts';
import { describe, finalState, SETUP } from '../scenario/runner.ts';
import { watchRun, type WatchedStep, type WatchOptions } from './watch.ts';
import { encodeSchedule } from '../explore/schedule.ts';
import type { Difference, DiffReport, StepSide } from '../diff/diff.ts';

export interface Frame {
  step: number;
  thread: string;
  /** the kernel event, or for a run the operation's call */
  label: string;
  result?: string;
  notes: string[];
  violations: Array<{ invariant: string; message: string }>;
  threads: Array<{ name: string; op: string | null; held: string[]; state: TaskState; waits?: string }>;
  state: ReturnType<typeof finalState>;
}
export interface ReportData {
  kind: 'run' | 'check' | 'replay';
  scenario: string;
  file: string;
  kernel: string;
  mutant?: string;
  verdict: string;
  schedule?: string;
  threads: string[];
  frames: Frame[];
  /** served by `vfio-sim serve`: the controls to pick kernel and mutant and run check */
  live?: { kernels: string[]; mutants: string[]; kernel: string; mutant: string };
}

/**
 * Follow a run and keep a frame per operation (granularity 'op', for run) or per kernel step of
 * the scenario's threads ('step', for an interleaving).
 */
export function reportData(scn: Scenario, opts: WatchOptions & { kind: ReportData['kind']; verdict: string; granularity: 'op' | 'step' }): ReportData {
  const frames: Frame[] = [];
  const onStep = ({ rec, run, task, finished, violations: broke }: WatchedStep) => {
    const violations = broke.map((v) => ({ invariant: v.invariant, message: v.message }));
    if (opts.granularity === 'op' && !finished.length && !violations.length) return;
    if (opts.granularity === 'step' && task.name === SETUP) return;
    const threads = run.tasks.map((t) => ({
      name: t.name,
      op: t.done ? null : (run.inProgressCall(t) ?? null),
      held: t.held.map(holdText),
      state: taskState(t),
      // what a sleeping thread waits for: the lock or completion its pending event names
      ...(t.blocked ? { waits: pendingText(t) } : {}),
    }));
    const base = { step: rec.step, thread: task.name, notes: [...rec.notes], violations, threads, state: finalState(run) };
    if (opts.granularity === 'op') {
      // an operation's frame lists its fault-handler calls where a kernel step's lists its notes
      for (const s of finished) frames.push({ ...base, thread: s.thread, label: s.call, notes: (s.faults ?? []).map((f) => `fault order ${f.order} va ${f.va}${f.pfn ? ` pfn ${f.pfn}` : ''} -> ${f.outcome}`), result: describe(s.result) + (s.mismatch ? ` (EXPECTATION FAILED, line ${s.line}: ${s.mismatch})` : '') });
      if (!finished.length) frames.push({ ...base, label: 'invariant check' });
    } else {
      const done = finished.map((s) => `${s.thread}[${s.index}] ${s.call} = ${describe(s.result)}`);
      frames.push({ ...base, label: eventText(rec.ev), ...(done.length ? { result: done.join('; ') } : {}) });
    }
  };
  watchRun(scn, opts, onStep);
  return {
    kind: opts.kind, scenario: scn.name, file: scn.file, kernel: opts.kernel, ...(opts.mutant ? { mutant: opts.mutant } : {}), verdict: opts.verdict,
    ...(opts.schedule ? { schedule: encodeSchedule(opts.schedule) } : {}),
    threads: [...new Set(frames.flatMap((f) => f.threads.map((t) => t.name)))],
    frames,
  };
}

/** Text for HTML: the characters markup gives a meaning escaped. */
export const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** The page: markup, style, the data as JSON, and page.js. */
export function htmlReport(data: ReportData): string {
  const script = readFileSync(new URL('./page.js', import.meta.url), 'utf8');
  // JSON inside <script>: no "</" can close the element early
  const json = JSON.stringify(data).replace(/</g, '\\u003c');
  const title = `${data.kind} ${data.scenario} on ${data.kernel}${data.mutant ? ` (mutant ${data.mutant})` : ''}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; connect-src 'self'">
<title>vfio-sim: ${esc(title)}</title>
<style>${STYLE}</style></head>
<body>
<header><h1>vfio-sim: ${esc(title)}</h1><p id="verdict" role="status"></p></header>
<nav aria-label="steps">
<button id="first" aria-label="first step" title="first step (Home)">« first</button>
<button id="prev" aria-label="previous step" title="previous step (left arrow)">‹ back</button>
<span id="pos" aria-live="polite"></span>
<button id="next" aria-label="next step" title="next step (right arrow)">next ›</button>
<button id="last" aria-label="last step" title="last step (End)">last »</button>
<button id="toviolation" aria-label="jump to the violation" title="jump to the violation (v)">jump to the violation</button>
<span id="live"></span>
</nav>
<main>
<section id="timeline" aria-label="timeline"><h2>Steps</h2><div id="lanes"></div></section>
<section id="state" aria-label="state after the step"><h2 id="statehead">State</h2><div id="now"></div><div id="procs"></div><div id="devs"></div><div id="bufs"></div><div id="thr"></div></section>
</main>
<script id="data" type="application/json">${json}</script>
<script>${script}</script>
</body></html>
`;
}

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
header{padding:8px 16px;background:#263238;color:#fff}header h1{font-size:17px;margin:0}#verdict{margin:4px 0 0}
.fail{color:#ffab91;font-weight:600}.pass{color:#a5d6a7;font-weight:600}
nav{padding:6px 16px;border-bottom:1px solid #ccc;background:#fff;position:sticky;top:0}
nav button{font-size:15px;margin-right:4px}#live{margin-left:16px}#live select,#live button{margin-right:6px}#checkprogress{margin-left:8px;font-variant-numeric:tabular-nums}#pos{margin:0 8px;font-variant-numeric:tabular-nums}
main{display:grid;grid-template-columns:minmax(320px,45%) 1fr;gap:12px;padding:8px 16px}
h2{font-size:15px;margin:6px 0}h3{font-size:14px;margin:10px 0 4px}
#lanes{max-height:80vh;overflow:auto;border:1px solid #ddd;background:#fff}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #eee;padding:2px 6px;text-align:left;vertical-align:top;font-family:ui-monospace,monospace;font-size:12px}
th{background:#f0f0f0;position:sticky;top:0}
tr.cur td{background:#fff59d}tr.bad td.act{background:#ffcdd2}tr{cursor:pointer}
td.act{font-weight:600}.res{color:#555}.note{color:#2e7d32}
tr.stale td{background:#ffcdd2;font-weight:600}.viol{color:#b71c1c;font-weight:600}
.strip{position:relative;height:18px;background:#eceff1;border:1px solid #b0bec5;margin:4px 0}
.seg{position:absolute;top:0;bottom:0;background:#64b5f6;border-right:1px solid #fff}.seg.stale{background:#e53935}
`;

/**
 * The diff page (diff --html OUT): the two kernels side by side, step by step, each difference
 * marked, an expected one with the reviewed reason it cites; then the invariant verdicts. Static:
 * no script, the same style.
 */
export function htmlDiff(r: DiffReport): string {
  const [a, b] = r.kernels;
  const rule = new Map(r.rules.map((x) => [x.id, x]));
  const cell = (s: StepSide | null | undefined) => (s ? `${esc(s.result)}${s.installed.map((x) => `<div class="note">${esc(x)}</div>`).join('')}${Object.entries(s.violations).map(([k, m]) => `<div class="viol">${esc(k)}: ${esc(m)}</div>`).join('')}` : '<span class="res">(not run)</span>');
  const diffs = (ds: Difference[]) =>
    ds.map((d) => `<div class="${d.class === 'flagged' ? 'viol' : 'res'}">${d.class === 'flagged' ? 'FLAGGED' : 'expected'}: ${esc(d.field)}${d.key ? ` ${esc(d.key)}` : ''}: ${esc(d.values[a] ?? '')} &rarr; ${esc(d.values[b] ?? '')}${d.rule && rule.get(d.rule) ? ` <i>(${esc(rule.get(d.rule)!.reason)}; ${esc(rule.get(d.rule)!.spec)})</i>` : ''}</div>`).join('');
  const rows = r.steps
    .map((s) => `<tr class="${s.differences.some((d) => d.class === 'flagged') ? 'stale' : s.differences.length ? 'cur' : ''}"><td>${esc(s.where)}</td><td>${esc(`${s.op} ${s.args}`.trim())}</td><td>${cell(s.per[a])}</td><td>${cell(s.per[b])}</td><td>${diffs(s.differences)}</td></tr>`)
    .join('\n');
  const verdicts = r.verdicts.map((v) => `<tr><td>${esc(v.invariant)}</td>${[a, b].map((k) => `<td>${v.per[k]?.violated ? `<span class="viol">violated</span>${v.per[k]!.declared ? ' (declared)' : ''}: ${esc(v.per[k]!.message ?? '')}` : 'holds'}</td>`).join('')}</tr>`).join('\n');
  const title = `diff ${r.scenario}: ${a} vs ${b}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>vfio-sim: ${esc(title)}</title><style>${STYLE}</style></head>
<body><header><h1>vfio-sim: ${esc(title)}</h1><p role="status"><span class="${r.flagged ? 'fail' : 'pass'}">${r.flagged} flagged, ${r.expected} expected difference(s)</span> (${esc(r.file)})</p></header>
<main style="display:block">
<h2>Steps</h2>
<table aria-label="the two kernels step by step"><thead><tr><th scope="col">step</th><th scope="col">call</th><th scope="col">${esc(a)}</th><th scope="col">${esc(b)}</th><th scope="col">differences</th></tr></thead><tbody>
${rows}
</tbody></table>
<h2>Invariants</h2>
<table aria-label="invariant verdicts"><thead><tr><th scope="col">invariant</th><th scope="col">${esc(a)}</th><th scope="col">${esc(b)}</th></tr></thead><tbody>
${verdicts}
</tbody></table>
${r.final.differences.length ? `<h2>Final state</h2>${diffs(r.final.differences)}` : ''}
</main></body></html>
`;
}
