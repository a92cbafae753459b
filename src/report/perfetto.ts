// Perfetto / Chrome trace export: the Trace Event Format (the JSON ui.perfetto.dev and
// chrome://tracing open). One process per modelled process, one track per thread (setup included);
// scenario operations and the kernel's steps as nested slices; lock holds as async slices (a hold
// is not nested in the thread's calls: a lock taken in one operation may be released in another,
// or handed over by a wake-up); faults, what a step changed, and broken invariants as instants.
// Time is the kernel's step count: one step is 1 us on the timeline.
import { eventText, holdText, type Task } from '../kernel/sched/sched.ts';
import type { Scenario } from '../scenario/loader.ts';
import { describe } from '../scenario/runner.ts';
import { watchRun, type WatchedStep, type WatchOptions } from './watch.ts';

/** One event of the Trace Event Format (the fields this exporter writes). */
export interface TraceEvent {
  name: string;
  /** X complete slice, b/e async begin/end, i instant, M metadata */
  ph: 'X' | 'b' | 'e' | 'i' | 'M';
  pid: number;
  tid?: number;
  ts?: number;
  dur?: number;
  cat?: string;
  id?: string;
  /** instant scope: t thread, g global */
  s?: 't' | 'g';
  args?: Record<string, unknown>;
}
export interface TraceDoc {
  traceEvents: TraceEvent[];
  displayTimeUnit: 'ns' | 'ms';
  metadata: Record<string, unknown>;
}

/** Steps of one run, watched as they happen (ScenarioRun's onStep). */
class Recorder {
  readonly events: TraceEvent[] = [];
  private readonly tids = new Map<number, { tid: number; pid: number }>();
  private readonly pids = new Map<string, number>();
  private readonly held = new Map<number, Set<string>>();
  private readonly opStart = new Map<string, number>();
  private last = 0;

  private track(t: Task): { tid: number; pid: number } {
    let tr = this.tids.get(t.id);
    if (tr) return tr;
    const proc = (t.owner as { name?: string } | undefined)?.name ?? 'kernel';
    let pid = this.pids.get(proc);
    if (pid === undefined) {
      this.pids.set(proc, (pid = this.pids.size + 1));
      this.events.push({ name: 'process_name', ph: 'M', pid, args: { name: proc } });
    }
    tr = { tid: t.id + 1, pid };
    this.tids.set(t.id, tr);
    this.events.push({ name: 'thread_name', ph: 'M', pid, tid: tr.tid, args: { name: t.name } });
    return tr;
  }

  onStep = ({ rec, run, task, finished, violations }: WatchedStep): void => {
    const ts = rec.step;
    this.last = ts + 1;
    const me = this.track(task);
    if (!this.opStart.has(task.name)) this.opStart.set(task.name, ts);
    this.events.push({ name: eventText(rec.ev), ph: 'X', cat: 'step', pid: me.pid, tid: me.tid, ts, dur: 1, args: { step: rec.step, notes: rec.notes } });
    for (const n of rec.notes) this.events.push({ name: n, ph: 'i', s: 't', cat: /fault/.test(n) ? 'fault' : 'change', pid: me.pid, tid: me.tid, ts: ts + 0.5 });
    // lock holds of every task: a release can hand a lock to a sleeper, whose hold starts here
    for (const t of run.k.sched.tasks) {
      const now = new Set(t.held.map(holdText));
      const was = this.held.get(t.id) ?? new Set<string>();
      if (!now.size && !was.size) continue;
      const tr = this.track(t);
      for (const k of was) if (!now.has(k)) this.events.push({ name: k, ph: 'e', cat: 'lock', id: `${t.id}:${k}`, pid: tr.pid, tid: tr.tid, ts: ts + 1 });
      for (const k of now) if (!was.has(k)) this.events.push({ name: k, ph: 'b', cat: 'lock', id: `${t.id}:${k}`, pid: tr.pid, tid: tr.tid, ts });
      this.held.set(t.id, now);
    }
    // operations that finished in this step: a slice from the thread's first step of it
    for (const s of finished) {
      const start = this.opStart.get(s.thread) ?? ts;
      this.events.push({ name: s.call, ph: 'X', cat: 'operation', pid: me.pid, tid: me.tid, ts: start, dur: ts + 1 - start, args: { result: describe(s.result), line: s.line, ...(s.faults ? { faults: s.faults } : {}), ...(s.mismatch ? { mismatch: s.mismatch } : {}) } });
      if (s.mismatch) this.events.push({ name: `expectation failed: ${s.mismatch}`, ph: 'i', s: 'g', cat: 'violation', pid: me.pid, tid: me.tid, ts: ts + 1 });
      this.opStart.delete(s.thread);
    }
    for (const v of violations) this.events.push({ name: `${v.invariant}: ${v.message}`, ph: 'i', s: 'g', cat: 'violation', pid: me.pid, tid: me.tid, ts: ts + 1 });
  };

  /** Close what is still open at the end (a lock held when the run stopped). */
  finish(): void {
    for (const [id, m] of this.held)
      for (const k of m) {
        const tr = this.tids.get(id)!;
        this.events.push({ name: k, ph: 'e', cat: 'lock', id: `${id}:${k}`, pid: tr.pid, tid: tr.tid, ts: this.last });
      }
  }
}

/**
 * The trace of a run of `scn`: run's round-robin, or with `schedule` exactly that interleaving
 * (a counterexample, `replay --schedule`).
 */
export function perfettoTrace(scn: Scenario, opts: WatchOptions): TraceDoc {
  const rec = new Recorder();
  watchRun(scn, opts, rec.onStep);
  rec.finish();
  return {
    traceEvents: rec.events,
    displayTimeUnit: 'ns',
    metadata: { tool: 'vfio-sim', scenario: scn.name, kernel: opts.kernel, ...(opts.mutant ? { mutant: opts.mutant } : {}), ...(opts.schedule ? { schedule: opts.schedule.join(',') } : {}), time: 'one kernel step = 1 us' },
  };
}
