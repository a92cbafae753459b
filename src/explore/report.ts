// Printing explorations and counterexamples: a per-thread trace of the failing interleaving (what
// each step did, which locks each thread held, what was installed or zapped), the broken invariant,
// and the schedule string that replays it.
import type { Scenario } from '../scenario/loader.ts';
import { describe } from '../scenario/runner.ts';
import type { Execution } from './execution.ts';
import type { ExploreResult } from './result.ts';
import { encodeSchedule } from './schedule.ts';

export function formatTrace(ex: Execution): string[] {
  const k = ex.run.k;
  const names = ex.tasks.map((t) => t.name);
  const w = Math.max(6, ...names.map((n) => n.length));
  const out: string[] = [];
  let shown = 0;
  const taskAt = new Map<number, number>();
  ex.tasks.forEach((t, i) => taskAt.set(t.id, i));
  for (const rec of k.sched.trace) {
    const i = taskAt.get(rec.task);
    if (i === undefined) continue; // the setup task
    const t = ex.tasks[i];
    const evs = rec.ev.op === 'start' ? 'start' : `${rec.ev.op.replace(':woken', ' (woken)')} ${rec.ev.obj}`;
    out.push(`${String(rec.step).padStart(5)}  ${t.name.padEnd(w)}  ${evs}`);
    for (const n of rec.notes) out.push(`${' '.repeat(7 + w)}  | ${n}`);
    // operations that completed in this step
    while (shown < ex.run.steps.length && ex.run.steps[shown] && stepDoneBy(ex, shown, rec.step)) {
      const s = ex.run.steps[shown++];
      out.push(`${' '.repeat(7 + w)}  => ${s.thread}[${s.index}] ${s.op} = ${describe(s.result)}${s.mismatch ? `  (EXPECTATION FAILED: ${s.mismatch})` : ''}`);
    }
  }
  return out;
}

// Steps complete in order; the runner records them as they finish, so every step recorded by the
// time the trace record was made belongs at or before it.
function stepDoneBy(ex: Execution, idx: number, stepNo: number): boolean {
  return (ex.stepDoneAt[idx] ?? Infinity) <= stepNo;
}

export function formatCounterexample(scn: Scenario, r: ExploreResult, ex: Execution, cmd: string): string {
  const c = r.counterexample!;
  const sched = encodeSchedule(c.schedule);
  const lines = [
    `VIOLATION ${c.invariant}: ${c.message}`,
    `  after ${c.schedule.length} steps, ${c.preemptions} preemption(s); found in execution ${r.executions}`,
    `  schedule: ${sched}`,
    `  replay:   ${cmd} --schedule '${sched}'`,
    '',
    'trace (step, thread, what it did; | what changed; => an operation finished):',
    ...formatTrace(ex).map((l) => '  ' + l),
    '',
    'locks held at the end:',
    ...ex.tasks.map((t) => `  ${t.name}: ${t.held.length ? t.held.map((h) => `${h.lock.name} (${h.mode === 'r' ? 'read' : 'write'})`).join(', ') : 'none'}${t.done ? '' : t.blocked ? `, sleeping in ${t.pending.op.replace(':woken', '')} ${t.pending.obj}` : `, next: ${t.pending.op} ${t.pending.obj}`}`),
  ];
  return lines.join('\n');
}

export function formatSummary(scn: Scenario, r: ExploreResult, extra: string[] = []): string {
  const secs = (r.elapsedMs / 1000).toFixed(2);
  const rate = r.elapsedMs ? Math.round((r.executions * 1000) / r.elapsedMs) : r.executions;
  const lines = [
    `${scn.name}: ${r.mode}, ${r.executions} execution(s)${r.sleepBlocked ? ` (+${r.sleepBlocked} cut by sleep sets)` : ''}${r.states !== undefined ? `, ${r.states} distinct state(s) stored, ${r.statesCut} execution(s) ended at a state explored before` : ''}${r.restarts ? `, ${r.restarts} restart(s) of atomic blocks` : ''}, ${r.steps} steps, max depth ${r.maxDepth}, ${secs} s (${rate}/s)`,
    ...extra,
  ];
  const bounded = /^bounded\((\d+)\)$/.exec(r.mode);
  if (!r.counterexample) {
    if (r.mode.startsWith('pct')) lines.push(`no violation found in ${r.executions} randomized run(s): not a proof for the interleavings not run`);
    else if (!r.complete) lines.push('no violation found, but the search was cut short (execution cap, time budget or a missing shard): not every interleaving was explored');
    else lines.push(bounded ? `no violation: every interleaving with at most ${bounded[1]} preemption(s) explored (bounded: not a proof for more preemptions)` : 'no violation: every interleaving explored');
  }
  return lines.join('\n');
}

/**
 * An estimate of the interleavings naive enumeration would run: the multinomial (Σn)!/Πn! of the
 * threads' step counts (not a bound: step counts differ between interleavings, and blocking rules
 * some orders out).
 */
export function multinomial(counts: number[]): bigint {
  let r = 1n, total = 0;
  for (const c of counts) {
    for (let i = 1; i <= c; i++) r = (r * BigInt(total + i)) / BigInt(i);
    total += c;
  }
  return r;
}
export function sci(n: bigint): string {
  const s = n.toString();
  return s.length <= 7 ? Number(n).toLocaleString('en-US') : `${s[0]}.${s.slice(1, 3)}e${s.length - 1}`;
}
