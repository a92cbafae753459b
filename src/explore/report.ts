// Printing explorations and counterexamples: a per-thread trace of the failing interleaving (what
// each step did, which locks each thread held, what was installed or zapped), the broken invariant,
// and the schedule string that replays it.
import type { Scenario } from '../scenario/loader.ts';
import { describe, type StepOut } from '../scenario/runner.ts';
import { eventText, modeName, pendingText, type Task } from '../kernel/sched/sched.ts';
import type { Execution } from './execution.ts';
import type { ExploreResult } from './result.ts';
import { encodeSchedule } from './schedule.ts';

/** One kernel step of an interleaving, as check --json and replay --json print it. */
export interface TraceStep {
  step: number;
  thread: string;
  /** the event the step performed: a lock operation, a page-table or memory access, a count */
  op: string;
  obj: string;
  /** what the step changed (installs, zaps, status changes), as the kernel model noted it */
  notes: string[];
  /** the scenario operations that finished in this step, with their results */
  finished: Array<Pick<StepOut, 'thread' | 'index' | 'op' | 'result' | 'mismatch'>>;
}

/** The interleaving an execution took, step by step (the setup task's steps left out). */
export function traceSteps(ex: Execution): TraceStep[] {
  const taskAt = new Map<number, number>();
  ex.tasks.forEach((t, i) => taskAt.set(t.id, i));
  const out: TraceStep[] = [];
  let shown = 0;
  for (const rec of ex.run.k.sched.trace) {
    const i = taskAt.get(rec.task);
    if (i === undefined) continue; // the setup task
    const finished: TraceStep['finished'] = [];
    // operations that completed in this step
    while (shown < ex.run.steps.length && ex.run.steps[shown] && stepDoneBy(ex, shown, rec.step)) {
      const { thread, index, op, result, mismatch } = ex.run.steps[shown++];
      finished.push(mismatch ? { thread, index, op, result, mismatch } : { thread, index, op, result });
    }
    out.push({ step: rec.step, thread: ex.tasks[i].name, op: rec.ev.op, obj: rec.ev.obj, notes: [...rec.notes], finished });
  }
  return out;
}

/** What each thread holds and is doing when the execution stops. */
export function locksAtEnd(ex: Execution): Array<{ thread: string; held: Array<{ lock: string; mode: 'read' | 'write' }>; state: TaskState; next?: string }> {
  return ex.tasks.map((t) => ({
    thread: t.name,
    held: t.held.map((h) => ({ lock: h.lock.name, mode: modeName(h.mode) })),
    state: taskState(t),
    ...(t.done ? {} : { next: pendingText(t) }),
  }));
}

export type TaskState = 'done' | 'sleeping' | 'runnable';
export const taskState = (t: Task): TaskState => (t.done ? 'done' : t.blocked ? 'sleeping' : 'runnable');

/** The lock-level trace of an execution as JSON: its steps and the locks held at the end. */
export function traceJson(ex: Execution): { steps: TraceStep[]; locksAtEnd: ReturnType<typeof locksAtEnd> } {
  return { steps: traceSteps(ex), locksAtEnd: locksAtEnd(ex) };
}

export function formatTrace(ex: Execution): string[] {
  const steps = traceSteps(ex);
  const w = Math.max(6, ...ex.tasks.map((t) => t.name.length));
  const pad = ' '.repeat(7 + w);
  const out: string[] = [];
  for (const s of steps) {
    out.push(`${String(s.step).padStart(5)}  ${s.thread.padEnd(w)}  ${eventText(s)}`);
    for (const n of s.notes) out.push(`${pad}  | ${n}`);
    for (const f of s.finished) out.push(`${pad}  => ${f.thread}[${f.index}] ${f.op} = ${describe(f.result)}${f.mismatch ? `  (EXPECTATION FAILED: ${f.mismatch})` : ''}`);
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
    ...locksAtEnd(ex).map((t) => `  ${t.thread}: ${t.held.length ? t.held.map((h) => `${h.lock} (${h.mode})`).join(', ') : 'none'}${t.state === 'sleeping' ? `, sleeping in ${t.next}` : t.state === 'runnable' ? `, next: ${t.next}` : ''}`),
  ];
  return lines.join('\n');
}

/** States stored: distinct in one store; over jobs that kept their own, a sum in which a state can count once a job. */
const statesText = (r: ExploreResult) =>
  r.statesStores && r.statesStores > 1 ? `${r.states} state(s) stored by ${r.statesStores} jobs with a store each (a state counts once a job, so not all distinct)` : `${r.states} distinct state(s) stored`;

export function formatSummary(scn: Scenario, r: ExploreResult, extra: string[] = []): string {
  const secs = (r.elapsedMs / 1000).toFixed(2);
  const rate = r.elapsedMs ? Math.round((r.executions * 1000) / r.elapsedMs) : r.executions;
  const lines = [
    `${scn.name}: ${r.mode}, ${r.executions} execution(s)${r.sleepBlocked ? ` (+${r.sleepBlocked} cut by sleep sets)` : ''}${r.states !== undefined ? `, ${statesText(r)}, ${r.statesCut} execution(s) ended at a state explored before` : ''}${r.restarts ? `, ${r.restarts} restart(s) of atomic blocks` : ''}, ${r.steps} steps, max depth ${r.maxDepth}, ${secs} s (${rate}/s)`,
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
