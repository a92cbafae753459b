// The result of one run: the JSON document (README, "The command") and the readable trace.
import pc from 'picocolors';
import { finalState, describe, runSequential, ScenarioRun, type RunOptions, type StepOut } from './runner.ts';
import { isExpected, type Scenario } from './loader.ts';
import type { Violation } from '../kernel/kernel.ts';

export interface RunResult {
  scenario: string;
  kernel: string;
  mutant?: string;
  steps: StepOut[];
  violations: Array<Violation & { expected?: boolean }>;
  final: ReturnType<typeof finalState>;
  /** 0: every expectation met and no unexpected violation; 1 otherwise */
  exit: 0 | 1;
  problems: string[];
}

export function runScenario(scn: Scenario, opts: RunOptions = {}): { run: ScenarioRun; result: RunResult } {
  const run = new ScenarioRun(scn, opts);
  runSequential(run);
  return { run, result: summarize(run) };
}

export function summarize(run: ScenarioRun): RunResult {
  const k = run.k;
  const expected = run.expectedViolations();
  const violations: RunResult['violations'] = k.violations.map((v) => (isExpected(expected, v) ? { ...v, expected: true } : v));
  const problems: string[] = [];
  for (const s of run.steps) if (s.mismatch) problems.push(`${s.thread}[${s.index}] ${s.op} (line ${s.line}): ${s.mismatch}`);
  for (const v of violations) if (!v.expected) problems.push(`invariant ${v.invariant}: ${v.message}`);
  for (const f of expected)
    if (!violations.some((v) => isExpected([f], v))) problems.push(`expected the model to report ${f.invariant}${f.message ? ` (${f.message})` : ''} on ${k.variant.name}, but it did not`);
  const total = run.scn.setup.length + run.scn.threads.reduce((a, t) => a + t.steps.length, 0);
  if (run.steps.length < total && !problems.length) problems.push(`only ${run.steps.length} of ${total} steps ran`);
  return {
    scenario: run.scn.name, kernel: k.variant.name, ...(k.mutant ? { mutant: k.mutant } : {}),
    steps: run.steps, violations, final: finalState(run), exit: problems.length ? 1 : 0, problems,
  };
}

/** Loaded values read best in hex. */
export function show(s: StepOut): string {
  const r = s.result;
  if ((s.op === 'load' || s.op === 'guest_load') && 'ok' in r && typeof r.value === 'number') return `ok 0x${r.value.toString(16)}`;
  return describe(r);
}

/** What a step's detail adds to its call: where a signal hit (an ioctl's name is in the call already). */
const detailOf = (s: StepOut) => (s.detail && !s.call.includes(s.detail) ? s.detail : '');

export function formatTrace(scn: Scenario, r: RunResult, color = false): string {
  const c = color ? pc : { red: (s: string) => s, green: (s: string) => s, dim: (s: string) => s, yellow: (s: string) => s, bold: (s: string) => s, cyan: (s: string) => s };
  const lines: string[] = [];
  lines.push(c.bold(`scenario ${r.scenario}`) + c.dim(`  (${scn.file}, kernel ${r.kernel}${r.mutant ? `, mutant ${r.mutant}` : ''})`));
  const w = Math.max(5, ...r.steps.map((s) => s.thread.length));
  // the calls in one column, as wide as the widest (up to a limit), then the results
  const cw = Math.min(64, Math.max(12, ...r.steps.map((s) => s.call.length)));
  for (const s of r.steps) {
    const res = 'ok' in s.result ? c.green(show(s)) : 'errno' in s.result ? c.yellow(show(s)) : c.red(show(s));
    let line = `${s.thread.padEnd(w)} ${String(s.index).padStart(2)}  ${s.call.padEnd(cw)}  ${res}`;
    if (detailOf(s)) line += c.dim(`  ${detailOf(s)}`);
    if (s.result && 'ok' in s.result && s.result.out && !('lines' in s.result.out) && Object.keys(s.result.out).length) line += c.dim(`  ${JSON.stringify(s.result.out)}`);
    lines.push(line);
    for (const f of s.faults ?? []) lines.push(c.dim(`${' '.repeat(w + 5)}fault order ${String(f.order).padStart(2)} va ${f.va} pgoff ${f.pgoff}${f.pfn ? ` pfn ${f.pfn}` : ''} -> ${f.outcome}`));
    if (s.result && 'ok' in s.result && s.result.out && 'lines' in s.result.out) for (const m of s.result.out.lines as string[]) lines.push(c.dim(`${' '.repeat(w + 5)}${m}`));
    if (s.mismatch) lines.push(c.red(`${' '.repeat(w + 5)}EXPECTATION FAILED (${scn.file}:${s.line}): ${s.mismatch}`));
  }
  for (const v of r.violations) lines.push((v.expected ? c.yellow : c.red)(`${v.expected ? 'finding (expected)' : 'VIOLATION'} ${v.invariant}: ${v.message}`));
  lines.push(r.exit === 0 ? c.green(`PASS: ${r.steps.length} steps, every expectation met${r.violations.length ? `, ${r.violations.length} expected finding(s)` : ', no violation'}`) : c.red(`FAIL: ${r.problems.length} problem(s)`));
  return lines.join('\n');
}
