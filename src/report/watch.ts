// Following a run step by step, for the exporters (Perfetto, HTML): run's round-robin order, or one
// interleaving exactly (a counterexample's schedule, replay --schedule). Each step comes with what
// the exporters all need from it: its task, the operations it finished, the invariants it broke.
import type { StepRecord, Task } from '../kernel/sched/sched.ts';
import type { Violation } from '../kernel/kernel.ts';
import type { Scenario } from '../scenario/loader.ts';
import { runSequential, ScenarioRun, type StepOut } from '../scenario/runner.ts';
import { replay } from '../explore/replay.ts';

export interface WatchOptions {
  kernel: string;
  mutant?: string;
  /** the interleaving to follow, by thread name per step; round-robin without it */
  schedule?: string[];
}

/** One scheduler step as the exporters see it. */
export interface WatchedStep {
  rec: StepRecord;
  run: ScenarioRun;
  task: Task;
  /** operations that finished in this step */
  finished: StepOut[];
  /** violations first reported in this step */
  violations: Violation[];
}

/** Run `scn` calling `onStep` after every scheduler step (setup's included); returns the run. */
export function watchRun(scn: Scenario, opts: WatchOptions, onStep: (s: WatchedStep) => void): ScenarioRun {
  let ops = 0, violations = 0;
  const step = (rec: StepRecord, run: ScenarioRun) => {
    const task = run.k.sched.tasks.find((t) => t.id === rec.task)!;
    const finished = run.steps.slice(ops);
    const broke = run.k.violations.slice(violations);
    ops = run.steps.length;
    violations = run.k.violations.length;
    onStep({ rec, run, task, finished, violations: broke });
  };
  if (opts.schedule) return replay(scn, opts.schedule, { kernel: opts.kernel, mutant: opts.mutant, onStep: step }).ex.run;
  const run = new ScenarioRun(scn, { kernel: opts.kernel, mutant: opts.mutant, onStep: step });
  runSequential(run);
  return run;
}
