// Following a run step by step, for the exporters (Perfetto, HTML): run's round-robin order, or one
// interleaving exactly (a counterexample's schedule, replay --schedule).
import type { StepRecord } from '../kernel/sched/sched.ts';
import type { Scenario } from '../scenario/loader.ts';
import { runSequential, ScenarioRun } from '../scenario/runner.ts';
import { replay } from '../explore/replay.ts';

export interface WatchOptions {
  kernel: string;
  mutant?: string;
  /** the interleaving to follow, by thread name per step; round-robin without it */
  schedule?: string[];
}

/** Run `scn` calling `onStep` after every scheduler step; returns the run. */
export function watchRun(scn: Scenario, opts: WatchOptions, onStep: (rec: StepRecord, run: ScenarioRun) => void): ScenarioRun {
  if (opts.schedule) return replay(scn, opts.schedule, { kernel: opts.kernel, mutant: opts.mutant, onStep }).ex.run;
  const run = new ScenarioRun(scn, { kernel: opts.kernel, mutant: opts.mutant, onStep });
  runSequential(run);
  return run;
}
