// One execution of a scenario under an external scheduler: the explorer's view of a ScenarioRun.
// It knows which tasks are enabled, what each will do next, and whether an invariant broke.
import type { Ev, StepRecord, Task } from '../kernel/sched/sched.ts';
import type { Violation } from '../kernel/kernel.ts';
import { isExpected, type ExpectedFinding, type Scenario } from '../scenario/loader.ts';
import { ScenarioRun, type RunOptions } from '../scenario/runner.ts';
import { forkPlan, type ForkPlan } from '../scenario/fork.ts';

export interface ExecOptions {
  kernel?: string;
  mutant?: string | null;
  trace?: boolean;
  /**
   * false: read-only mutex sections are ordered like any other (their events count as writes of
   * the mutex), the plain relation the lock-aware reduction is tested against
   */
  lockAware?: boolean;
  /** called after every scheduler step (see RunOptions) */
  onStep?: RunOptions['onStep'];
}

export interface Failure {
  invariant: string;
  message: string;
}

/** A booted run per scenario and kernel; null: it cannot be copied. */
const TEMPLATES = new WeakMap<Scenario, Map<string, { run: ScenarioRun; plan: ForkPlan } | null>>();

/**
 * A copy of the scenario's run as setup left it (ScenarioRun.fork): every execution starts from
 * the same state, so the explorer boots the kernel and runs setup once per scenario, not once per
 * execution. Undefined when the run cannot be copied (then each execution boots its own).
 */
function forkOf(scn: Scenario, opts: ExecOptions): ScenarioRun | undefined {
  let m = TEMPLATES.get(scn);
  if (!m) TEMPLATES.set(scn, (m = new Map()));
  const key = `${opts.kernel ?? ''}|${opts.mutant ?? ''}|${opts.trace ? 1 : 0}`;
  let t = m.get(key);
  if (t === undefined) {
    const runOpts = { kernel: opts.kernel, mutant: opts.mutant, checkEachStep: true, trace: opts.trace };
    const run = new ScenarioRun(scn, runOpts);
    // a second run built the same way tells module-level objects (shared) from the run's own
    // closures (a copy that still reached one would act on the template)
    t = { run, plan: forkPlan(run, new ScenarioRun(scn, runOpts)) };
    if (!run.fork(t.plan, true)) t = null;
    m.set(key, t);
  }
  return t?.run.fork(t.plan) ?? undefined;
}

export class Execution {
  readonly run: ScenarioRun;
  /** the task index (into run.tasks) of each step taken */
  readonly choices: number[] = [];
  private readonly expected: ExpectedFinding[];
  private seenViolations = 0;
  private seenSteps = 0;
  /** the kernel step number at which each run step (operation) finished */
  readonly stepDoneAt: number[] = [];
  /** first unexpected violation or failed expectation */
  failure: Failure | null = null;

  private readonly plainLocks: boolean;

  constructor(readonly scn: Scenario, opts: ExecOptions) {
    this.plainLocks = opts.lockAware === false;
    this.run = (!opts.onStep && forkOf(scn, opts)) || new ScenarioRun(scn, { kernel: opts.kernel, mutant: opts.mutant, checkEachStep: true, trace: opts.trace, onStep: opts.onStep });
    this.expected = this.run.expectedViolations();
    this.scan();
  }

  get tasks(): Task[] {
    return this.run.tasks;
  }
  enabled(): number[] {
    const out: number[] = [], tasks = this.run.tasks;
    for (let i = 0; i < tasks.length; i++) if (!tasks[i].done && !tasks[i].blocked) out.push(i);
    return out;
  }
  /** the event each live task will perform next (blocked tasks: what they wait to do) */
  pending(i: number): Ev | null {
    const t = this.run.tasks[i];
    if (!t || t.done) return null;
    const e = t.pending;
    return this.plainLocks && e.acc === 'r' && e.op.startsWith('mutex_') ? { ...e, acc: 'w' } : e;
  }
  /**
   * The tasks that can take step `depth`, or null when the execution ends there: a failure (unless
   * `goOn`), nothing runnable, or `maxDepth` steps without an end (reported as a livelock).
   */
  runnable(depth: number, maxDepth: number, goOn = false): number[] | null {
    if (this.failure && !goOn) return null;
    const en = this.enabled();
    if (!en.length) return null;
    if (depth >= maxDepth) {
      this.run.k.violation('no-deadlock', `livelock: no end after ${maxDepth} steps`);
      return null;
    }
    return en;
  }
  finished(): boolean {
    return this.run.tasks.every((t) => t.done);
  }

  /**
   * Take a step of task `i`. `replay`: the step repeats one an earlier execution took from the same
   * state (runs are deterministic), so the invariants it was checked against then are not checked again.
   */
  step(i: number, replay = false): StepRecord {
    this.choices.push(i);
    const rec = this.run.step(this.run.tasks[i], !replay);
    while (this.stepDoneAt.length < this.run.steps.length) this.stepDoneAt.push(rec.step);
    this.scan();
    return rec;
  }

  /** End of the execution: deadlock and leak checks. */
  end(): void {
    this.run.finish();
    this.scan();
  }

  private scan(): void {
    if (this.failure) return;
    const vs: Violation[] = this.run.k.violations;
    for (; this.seenViolations < vs.length; this.seenViolations++) {
      const v = vs[this.seenViolations];
      if (!isExpected(this.expected, v)) {
        this.failure = { invariant: v.invariant, message: v.message };
        return;
      }
    }
    const steps = this.run.steps;
    for (; this.seenSteps < steps.length; this.seenSteps++) {
      const s = steps[this.seenSteps];
      if (s.mismatch) {
        this.failure = { invariant: 'expect', message: `${s.thread}[${s.index}] ${s.op} (line ${s.line}): ${s.mismatch}` };
        return;
      }
    }
  }

  schedule(): string[] {
    return this.choices.map((i) => this.run.tasks[i].name);
  }
}
