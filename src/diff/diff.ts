// vfio-sim diff: run one scenario on two kernels and list, step by step, every difference a user
// can see (results, errnos, signals, installed page-table entries, /proc/PID/maps lines) and every
// difference in the invariant verdicts; optionally explore both kernels and compare what the
// explorer finds. Each difference is "expected" when an entry of the reviewed data file covers it
// and "flagged" otherwise.
import type { Scenario, Step } from '../scenario/loader.ts';
import { runScenario, show, type RunResult } from '../scenario/report.ts';
import { outcomeOf, procMaps, stepAt, type StepOut } from '../scenario/runner.ts';
import { exploreDpor } from '../explore/explorer.ts';
import { encodeSchedule } from '../explore/schedule.ts';
import { parseExpr, refsOf } from '../scenario/values.ts';
import { FEATURES } from '../uapi/vfio.ts';
import { classify, type ExpectedEntry, type Kind } from './expected.ts';

export const DEFAULT_KERNELS: [string, string] = ['v7.1', 'series-v4'];

/**
 * The invariants of docs/invariants.md that the model checks, in that order (iommu-revoked joins the table
 * once a run reports it); any other name a run reports is listed after them.
 */
export const INVARIANTS = ['decode-enabled', 'no-stale-pte', 'pfn-in-buffer', 'huge-aligned', 'lifetime', 'no-leak', 'no-deadlock'];

export interface Difference {
  /** `thread[index]` of the step, `final` (the end state) or `explore` (--check) */
  where: string;
  op: string;
  line: number | null;
  kind: Kind;
  field: string;
  /** which entry of the step: the VA of a page-table entry or of a VMA */
  key?: string;
  /** kernel name -> what it shows */
  values: Record<string, string>;
  class: 'expected' | 'flagged';
  rule?: string;
}

/** What one kernel did in one step. */
export interface StepSide {
  result: string;
  /** installed entries (NOPAGE faults): "VA order N pfn P" */
  installed: string[];
  /** the lines of a `maps` step */
  maps?: string[];
  /** invariants first reported at this step: name -> message */
  violations: Record<string, string>;
}

export interface StepDiff {
  where: string;
  thread: string;
  index: number;
  op: string;
  line: number | null;
  args: string;
  per: Record<string, StepSide | null>;
  differences: Difference[];
}

export interface Verdict {
  violated: boolean;
  /** the scenario declares it for this kernel (expect_violations) */
  declared: boolean;
  at: string[];
  message?: string;
}

export interface CheckSide {
  verdict: string;
  complete: boolean;
  executions: number;
  message?: string;
  schedule?: string;
  replay?: string;
}

export interface DiffReport {
  scenario: string;
  file: string;
  kernels: [string, string];
  /** the kernels the scenario's expect: lines are written for (`kernels:`) */
  declared: string[];
  steps: StepDiff[];
  final: { maps: Record<string, Record<string, string[]>>; differences: Difference[] };
  verdicts: Array<{ invariant: string; per: Record<string, Verdict> }>;
  /** each kernel's failed expect: lines (they are not differences; they say what the scenario assumed) */
  expectations: Record<string, string[]>;
  check?: { per: Record<string, CheckSide>; differences: Difference[] };
  /** the data-file entries that matched, with how many differences each covered */
  rules: Array<{ id: string; reason: string; spec: string; count: number }>;
  flagged: number;
  expected: number;
  exit: 0 | 1;
}

export interface DiffOptions {
  kernels?: [string, string];
  expected: ExpectedEntry[];
  /** explore both kernels (DPOR) and compare the verdicts */
  check?: boolean;
  maxExecutions?: number;
}

export class DiffUsageError extends Error {}

/** Parse "A,B" into two distinct kernel names (an unknown one fails when its kernel is built). */
export function parseKernels(s: string): [string, string] {
  const ks = s.split(',').map((x) => x.trim()).filter(Boolean);
  if (ks.length !== 2) throw new DiffUsageError(`--kernels takes two kernel names, A,B (got "${s}")`);
  if (ks[0] === ks[1]) throw new DiffUsageError(`--kernels names ${ks[0]} twice`);
  return [ks[0], ks[1]];
}

interface KernelRun {
  kernel: string;
  result: RunResult;
  byKey: Map<string, StepOut>;
  /** invariants first reported at each step key ("final" for the end-of-run checks) */
  violationsAt: Map<string, Record<string, string>>;
  finalMaps: Record<string, string[]>;
}

const keyOf = (s: { thread: string; index: number }) => `${s.thread}[${s.index}]`;

function runOn(scn: Scenario, kernel: string): KernelRun {
  const { run, result } = runScenario(scn, { kernel });
  const byKey = new Map(result.steps.map((s) => [keyOf(s), s]));
  const violationsAt = new Map<string, Record<string, string>>();
  for (const v of result.violations) {
    const s = v.step !== undefined ? result.steps[v.step] : undefined;
    const at = s ? keyOf(s) : 'final';
    const m = violationsAt.get(at) ?? {};
    m[v.invariant] ??= v.message;
    violationsAt.set(at, m);
  }
  const finalMaps: Record<string, string[]> = {};
  for (const p of run.k.procs) finalMaps[p.name] = procMaps(p);
  return { kernel, result, byKey, violationsAt, finalMaps };
}

/** The name a scenario value refers to (`m` in `m + 0x1000`), if any. */
function firstRef(v: unknown): string | undefined {
  try {
    return refsOf(parseExpr(v))[0];
  } catch {
    return undefined;
  }
}

const isDmaBufFeature = (f: unknown) => f === 'DMA_BUF' || ((typeof f === 'number' || typeof f === 'bigint') && Number(f) === FEATURES.DMA_BUF);

/**
 * What each `as:` name of the scenario refers to: an fd of a VFIO device (open of /dev/vfio/…), an
 * fd of an exported DMABUF (the DMA_BUF feature), or a mapping of either (mmap), through dup.
 */
function targets(scn: Scenario): Map<string, string> {
  const out = new Map<string, string>();
  const steps = [...scn.setup, ...scn.threads.flatMap((t) => t.steps)];
  // two passes: a dup or mmap may come before (in another thread) the step that binds its fd
  for (let pass = 0; pass < 2; pass++)
    for (const s of steps) {
      if (!s.as) continue;
      const from = out.get(firstRef(s.args.fd) ?? '');
      if (s.op === 'open' && String(s.args.path).startsWith('/dev/vfio/')) out.set(s.as, 'device-fd');
      else if (s.op === 'ioctl' && isDmaBufFeature(s.args.feature)) out.set(s.as, 'dmabuf-fd');
      else if (s.op === 'dup' && from) out.set(s.as, from);
      else if (s.op === 'mmap' && from) out.set(s.as, from.replace('-fd', '-mapping'));
    }
  return out;
}
function targetOf(step: Step | undefined, names: Map<string, string>): string | undefined {
  if (!step) return undefined;
  // mmap's addr is only a hint: what it maps is its fd
  for (const key of step.op === 'mmap' ? ['fd'] : ['addr', 'fd']) {
    const r = firstRef(step.args[key]);
    if (r !== undefined) return names.get(r);
  }
  return undefined;
}

const fmtArg = (v: unknown): string => {
  if (typeof v === 'bigint' || typeof v === 'number') return BigInt(v) >= 16n ? `0x${BigInt(v).toString(16)}` : String(v);
  if (Array.isArray(v)) return `[${v.map(fmtArg).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.entries(v).map(([k, x]) => `${k}:${fmtArg(x)}`).join(',')}}`;
  return String(v);
};
function argsText(step: Step | undefined): string {
  if (!step) return '';
  return Object.entries(step.args)
    .filter(([k]) => k !== 'expect' && k !== 'as')
    .map(([k, v]) => `${k}=${fmtArg(v)}`)
    .join(' ');
}

const installedOf = (s: StepOut) => new Map((s.faults ?? []).filter((f) => f.outcome === 'NOPAGE').map((f) => [f.va, `order ${f.order} pfn ${f.pfn}`]));
const mapsOf = (s: StepOut) => ('ok' in s.result && Array.isArray(s.result.out?.lines) ? (s.result.out.lines as string[]) : undefined);

/** The columns of a /proc/PID/maps line, keyed by the VMA's start. */
const MAPS_FIELDS = ['end', 'perms', 'offset', 'dev', 'inode', 'name'] as const;
function parseMaps(lines: string[]): Map<string, Record<(typeof MAPS_FIELDS)[number], string>> {
  const out = new Map<string, Record<(typeof MAPS_FIELDS)[number], string>>();
  for (const l of lines) {
    const [range, perms, offset, dev, inode, ...rest] = l.trim().split(/\s+/);
    const [start, end] = range.split('-');
    out.set(start, { end, perms, offset, dev, inode, name: rest.join(' ') || '(none)' });
  }
  return out;
}

type Raw = Omit<Difference, 'class' | 'rule'>;

function compareMaps(where: string, op: string, line: number | null, a: KernelRun, b: KernelRun, la: string[], lb: string[], prefix = ''): Raw[] {
  const out: Raw[] = [];
  const ma = parseMaps(la), mb = parseMaps(lb);
  const starts = [...new Set([...ma.keys(), ...mb.keys()])].sort((x, y) => (BigInt(`0x${x}`) < BigInt(`0x${y}`) ? -1 : 1));
  for (const st of starts) {
    const x = ma.get(st), y = mb.get(st);
    const key = `${prefix}${st}`;
    if (!x || !y) {
      out.push({ where, op, line, kind: 'maps', field: 'vma', key, values: { [a.kernel]: x ? la.find((l) => l.startsWith(st))!.trim() : 'none', [b.kernel]: y ? lb.find((l) => l.startsWith(st))!.trim() : 'none' } });
      continue;
    }
    for (const f of MAPS_FIELDS) if (x[f] !== y[f]) out.push({ where, op, line, kind: 'maps', field: f, key, values: { [a.kernel]: x[f], [b.kernel]: y[f] } });
  }
  return out;
}

function compareStep(where: string, op: string, line: number | null, a: KernelRun, b: KernelRun, sa: StepOut | undefined, sb: StepOut | undefined): Raw[] {
  const out: Raw[] = [];
  const both = (fa: string, fb: string) => ({ [a.kernel]: fa, [b.kernel]: fb });
  if (!sa || !sb) {
    out.push({ where, op, line, kind: 'result', field: 'outcome', values: both(sa ? show(sa) : 'did not run', sb ? show(sb) : 'did not run') });
  } else {
    const ra = sa.result, rb = sb.result;
    if (outcomeOf(ra) !== outcomeOf(rb)) out.push({ where, op, line, kind: 'result', field: 'outcome', values: both(show(sa), show(sb)) });
    else if ('ok' in ra && 'ok' in rb) {
      if (show(sa) !== show(sb)) out.push({ where, op, line, kind: 'result', field: 'value', values: both(show(sa), show(sb)) });
      const oa = (ra.out ?? {}) as Record<string, unknown>, ob = (rb.out ?? {}) as Record<string, unknown>;
      for (const f of new Set([...Object.keys(oa), ...Object.keys(ob)]))
        if (f !== 'lines' && JSON.stringify(oa[f]) !== JSON.stringify(ob[f])) out.push({ where, op, line, kind: 'result', field: `out.${f}`, values: both(JSON.stringify(oa[f] ?? null), JSON.stringify(ob[f] ?? null)) });
    } else if ('signal' in ra && (sa.detail ?? '') !== (sb.detail ?? '')) out.push({ where, op, line, kind: 'result', field: 'siginfo', values: both(sa.detail ?? '', sb.detail ?? '') });
    const ia = installedOf(sa), ib = installedOf(sb);
    for (const va of [...new Set([...ia.keys(), ...ib.keys()])].sort()) {
      const x = ia.get(va), y = ib.get(va);
      if (x === y) continue;
      const field = !x || !y ? 'va' : x.split(' pfn')[0] !== y.split(' pfn')[0] ? 'order' : 'pfn';
      out.push({ where, op, line, kind: 'installed', field, key: va, values: both(x ?? 'none', y ?? 'none') });
    }
    const la = mapsOf(sa), lb = mapsOf(sb);
    if (la || lb) out.push(...compareMaps(where, op, line, a, b, la ?? [], lb ?? []));
  }
  out.push(...compareVerdicts(where, op, line, a, b));
  return out;
}

function compareVerdicts(where: string, op: string, line: number | null, a: KernelRun, b: KernelRun): Raw[] {
  const va = a.violationsAt.get(where) ?? {}, vb = b.violationsAt.get(where) ?? {};
  const out: Raw[] = [];
  for (const inv of [...new Set([...Object.keys(va), ...Object.keys(vb)])].sort()) {
    if ((inv in va) === (inv in vb)) continue;
    const v = (m: Record<string, string>) => (inv in m ? `violated: ${m[inv]}` : 'holds');
    out.push({ where, op, line, kind: 'verdict', field: inv, values: { [a.kernel]: v(va), [b.kernel]: v(vb) } });
  }
  return out;
}

function sideOf(r: KernelRun, s: StepOut | undefined, key: string): StepSide | null {
  if (!s) return null;
  const side: StepSide = {
    result: show(s) + (s.detail && 'signal' in s.result ? `  ${s.detail}` : ''),
    installed: [...installedOf(s)].map(([va, e]) => `${va} ${e}`),
    violations: r.violationsAt.get(key) ?? {},
  };
  const m = mapsOf(s);
  if (m) side.maps = m;
  return side;
}

function explore(scn: Scenario, kernel: string, file: string, maxExecutions?: number): CheckSide {
  // as `check` explores by default: atomic blocks and state caching
  const r = exploreDpor(scn, { kernel, maxExecutions, atomic: true, states: true });
  const side: CheckSide = { verdict: 'no violation', complete: r.complete, executions: r.executions };
  if (r.counterexample) {
    const sched = encodeSchedule(r.counterexample.schedule);
    Object.assign(side, { verdict: r.counterexample.invariant, message: r.counterexample.message, schedule: sched, replay: `vfio-sim replay ${file} --kernel ${kernel} --schedule '${sched}'` });
  } else if (!r.complete) side.verdict = 'no violation found (not exhausted)';
  return side;
}

export function diffScenario(scn: Scenario, o: DiffOptions): DiffReport {
  const [ka, kb] = o.kernels ?? DEFAULT_KERNELS;
  const a = runOn(scn, ka), b = runOn(scn, kb);
  const used = new Map<string, number>();
  const names = targets(scn);
  const judge = (d: Raw, step?: Step): Difference => {
    const rule = classify(o.expected, { ...d, args: step?.args ?? {}, target: targetOf(step, names) }, ka, kb);
    if (!rule) return { ...d, class: 'flagged' };
    used.set(rule.id, (used.get(rule.id) ?? 0) + 1);
    return { ...d, class: 'expected', rule: rule.id };
  };

  // steps in the order kernel A ran them, then any that only B ran
  const keys = [...new Set([...a.result.steps.map(keyOf), ...b.result.steps.map(keyOf)])];
  const steps: StepDiff[] = keys.map((key) => {
    const sa = a.byKey.get(key), sb = b.byKey.get(key);
    const any = (sa ?? sb)!;
    const step = stepAt(scn, any.thread, any.index);
    const line = any.line ?? null;
    const diffs = compareStep(key, any.op, line, a, b, sa, sb).map((d) => judge(d, step));
    return { where: key, thread: any.thread, index: any.index, op: any.op, line, args: argsText(step), per: { [ka]: sideOf(a, sa, key), [kb]: sideOf(b, sb, key) }, differences: diffs };
  });

  const finalDiffs: Difference[] = [];
  for (const p of [...new Set([...Object.keys(a.finalMaps), ...Object.keys(b.finalMaps)])])
    finalDiffs.push(...compareMaps('final', 'final', null, a, b, a.finalMaps[p] ?? [], b.finalMaps[p] ?? [], `${p} `).map((d) => judge(d)));
  finalDiffs.push(...compareVerdicts('final', 'final', null, a, b).map((d) => judge(d)));

  const invariants = [...INVARIANTS];
  for (const r of [a, b]) for (const v of r.result.violations) if (!invariants.includes(v.invariant)) invariants.push(v.invariant);
  const verdicts = invariants.map((invariant) => {
    const per: Record<string, Verdict> = {};
    for (const r of [a, b]) {
      const at = [...r.violationsAt].filter(([, m]) => invariant in m).map(([w]) => w);
      const declared = (scn.expectViolations[r.kernel] ?? scn.expectViolations['*'] ?? []).some((f) => f.invariant === invariant);
      per[r.kernel] = { violated: at.length > 0, declared, at, ...(at.length ? { message: r.violationsAt.get(at[0])![invariant] } : {}) };
    }
    return { invariant, per };
  });

  let check: DiffReport['check'];
  if (o.check) {
    const per = { [ka]: explore(scn, ka, scn.file, o.maxExecutions), [kb]: explore(scn, kb, scn.file, o.maxExecutions) };
    const differences: Difference[] = [];
    if (per[ka].verdict !== per[kb].verdict)
      differences.push(judge({ where: 'explore', op: 'check', line: null, kind: 'check', field: 'verdict', values: { [ka]: per[ka].verdict, [kb]: per[kb].verdict } }));
    check = { per, differences };
  }

  const all = [...steps.flatMap((s) => s.differences), ...finalDiffs, ...(check?.differences ?? [])];
  const flagged = all.filter((d) => d.class === 'flagged').length;
  const problems = (r: KernelRun) => r.result.steps.filter((s) => s.mismatch).map((s) => `${keyOf(s)} ${s.op} (line ${s.line}): ${s.mismatch}`);
  return {
    scenario: scn.name, file: scn.file, kernels: [ka, kb], declared: scn.kernels, steps,
    final: { maps: { [ka]: a.finalMaps, [kb]: b.finalMaps }, differences: finalDiffs },
    verdicts, expectations: { [ka]: problems(a), [kb]: problems(b) }, check,
    rules: [...used].map(([id, count]) => {
      const e = o.expected.find((x) => x.id === id)!;
      return { id, reason: e.reason.trim(), spec: e.spec, count };
    }),
    flagged, expected: all.length - flagged, exit: flagged ? 1 : 0,
  };
}

/** All differences of a report, in order. */
export function allDifferences(r: DiffReport): Difference[] {
  return [...r.steps.flatMap((s) => s.differences), ...r.final.differences, ...(r.check?.differences ?? [])];
}

// ---- text ----

function diffLine(d: Difference, [ka, kb]: [string, string], w: number): string {
  const tag = d.class === 'flagged' ? '! FLAGGED ' : '~ expected';
  const what = `${d.kind} ${d.field}${d.key ? ` @ ${d.key}` : ''}`;
  const rule = d.rule ? `  [${d.rule}]` : '';
  const one = `      ${tag}  ${what}: ${ka} ${d.values[ka]} | ${kb} ${d.values[kb]}${rule}`;
  if (one.length <= 120) return one;
  return `      ${tag}  ${what}${rule}\n${' '.repeat(18)}${ka.padEnd(w)}  ${d.values[ka]}\n${' '.repeat(18)}${kb.padEnd(w)}  ${d.values[kb]}`;
}

function verdictText(v: Verdict): string {
  if (!v.violated) return 'holds';
  return `VIOLATED at ${v.at.join(', ')}${v.declared ? ' (declared in expect_violations)' : ''}`;
}

export function formatDiff(r: DiffReport): string {
  const [ka, kb] = r.kernels;
  const w = Math.max(ka.length, kb.length);
  const L: string[] = [];
  L.push(`vfio-sim diff: ${r.scenario} (${r.file}): ${ka} vs ${kb}`);
  const outside = r.kernels.filter((k) => !r.declared.includes(k));
  if (outside.length) L.push(`note: the scenario's expect: lines are written for ${r.declared.join(', ')}; ${outside.join(', ')} is outside them`);
  L.push(`legend: "=" same on both, "~" only expected differences, "!" a flagged difference`);
  L.push('');
  const sw = Math.max(...r.steps.map((s) => s.where.length), 5);
  for (const s of r.steps) {
    const mark = s.differences.some((d) => d.class === 'flagged') ? '!' : s.differences.length ? '~' : '=';
    const head = `${mark} ${s.where.padEnd(sw)}  ${s.op}${s.args ? ` ${s.args}` : ''}${s.line ? ` (line ${s.line})` : ''}`;
    const pa = s.per[ka], pb = s.per[kb];
    if (mark === '=' && pa) {
      L.push(`${head}: ${pa.result}${pa.installed.length ? `; installs ${pa.installed.join(', ')}` : ''}`);
      for (const [inv, msg] of Object.entries(pa.violations)) L.push(`${' '.repeat(sw + 4)}both report ${inv}: ${msg}`);
      continue;
    }
    L.push(head);
    for (const [k, p] of [[ka, pa], [kb, pb]] as const) {
      const ind = ' '.repeat(sw + 4);
      if (!p) {
        L.push(`${ind}${k.padEnd(w)}  did not run`);
        continue;
      }
      L.push(`${ind}${k.padEnd(w)}  ${p.result}`);
      for (const e of p.installed) L.push(`${ind}${' '.repeat(w)}  installs ${e}`);
      for (const m of p.maps ?? []) L.push(`${ind}${' '.repeat(w)}  | ${m}`);
      // a verdict that differs is shown by its difference line below
      for (const [inv, msg] of Object.entries(p.violations)) if (!s.differences.some((d) => d.kind === 'verdict' && d.field === inv)) L.push(`${ind}${' '.repeat(w)}  reports ${inv}: ${msg}`);
    }
    for (const d of s.differences) L.push(diffLine(d, r.kernels, w));
  }
  if (r.final.differences.length) {
    L.push('', 'final state:');
    for (const d of r.final.differences) L.push(diffLine(d, r.kernels, w));
  }
  L.push('', 'invariant verdicts:');
  const iw = Math.max(...r.verdicts.map((v) => v.invariant.length));
  for (const v of r.verdicts) L.push(`  ${v.invariant.padEnd(iw)}  ${ka.padEnd(w)}  ${verdictText(v.per[ka])}\n  ${' '.repeat(iw)}  ${kb.padEnd(w)}  ${verdictText(v.per[kb])}`);
  L.push('', 'expect: lines:');
  for (const k of r.kernels) L.push(`  ${k.padEnd(w)}  ${r.expectations[k].length ? `${r.expectations[k].length} not met: ${r.expectations[k].join('; ')}` : 'all met'}`);
  if (r.check) {
    L.push('', 'explored (DPOR over the threads\' interleavings):');
    for (const k of r.kernels) {
      const c = r.check.per[k];
      L.push(`  ${k.padEnd(w)}  ${c.message ? `VIOLATION ${c.verdict}: ${c.message}` : c.complete ? 'no violation: every interleaving explored' : c.verdict} (${c.executions} execution(s))`);
      if (c.schedule) L.push(`  ${' '.repeat(w)}  schedule: ${c.schedule}\n  ${' '.repeat(w)}  replay:   ${c.replay}`);
    }
    for (const d of r.check.differences) L.push(diffLine(d, r.kernels, w));
  }
  if (r.rules.length) {
    L.push('', 'expected differences (data/expected-differences.yaml):');
    for (const u of r.rules) L.push(`  ${u.id} (${u.count}): ${u.reason} [${u.spec}]`);
  }
  L.push('', `${r.flagged + r.expected} difference(s): ${r.flagged} flagged, ${r.expected} expected`);
  return L.join('\n');
}

/**
 * Several scenarios on one pair of kernels: a line per scenario (same, its expected differences by
 * entry, or its flagged ones in full), the scenarios left out because their `kernels:` does not
 * list both, and the reviewed entries that matched, with how many differences and scenarios each.
 */
export function formatDiffSummary(reports: DiffReport[], skipped: Array<{ file: string; kernels: string[] }>, [ka, kb]: [string, string]): string {
  const L: string[] = [`vfio-sim diff: ${reports.length} scenario(s), ${ka} vs ${kb}`, ''];
  const entries = new Map<string, { reason: string; spec: string; count: number; scenarios: number }>();
  for (const r of reports) {
    const n = allDifferences(r).length;
    const ids = r.rules.map((x) => `${x.id} x${x.count}`).join(', ');
    L.push(`${r.flagged ? '!' : n ? '~' : '='} ${r.file}: ${n ? `${n} difference(s)${r.flagged ? `, ${r.flagged} FLAGGED` : ''}${ids ? ` (${ids})` : ''}` : 'same'}`);
    if (r.flagged) {
      const w = Math.max(ka.length, kb.length);
      for (const d of allDifferences(r)) if (d.class === 'flagged') L.push(diffLine(d, r.kernels, w));
    }
    for (const x of r.rules) {
      const e = entries.get(x.id) ?? { reason: x.reason, spec: x.spec, count: 0, scenarios: 0 };
      e.count += x.count;
      e.scenarios++;
      entries.set(x.id, e);
    }
  }
  if (skipped.length) {
    L.push('', `not compared (their kernels: do not list both):`);
    for (const s of skipped) L.push(`  ${s.file}: ${s.kernels.join(', ')}`);
  }
  L.push('', 'reviewed differences (data/expected-differences.yaml entries that matched):');
  if (!entries.size) L.push('  none');
  for (const [id, e] of [...entries].sort((x, y) => x[0].localeCompare(y[0]))) {
    L.push(`  ${id}: ${e.count} difference(s) in ${e.scenarios} scenario(s)`);
    L.push(`      reason: ${e.reason.replace(/\s+/g, ' ')}`);
    L.push(`      source: ${e.spec.replace(/\s+/g, ' ')}`);
  }
  const flagged = reports.filter((r) => r.flagged);
  L.push('', flagged.length ? `${flagged.length} scenario(s) with a FLAGGED difference` : `every difference is a reviewed one (${reports.reduce((a, r) => a + r.expected, 0)} in all)`);
  return L.join('\n');
}
