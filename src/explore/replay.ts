// Replay: one given schedule, exactly, with its trace (counterexamples, `vfio-sim replay`).
import type { Scenario } from '../scenario/loader.ts';
import { Execution, type ExecOptions } from './execution.ts';
import { DEFAULT_MAX_DEPTH } from './result.ts';

/**
 * Re-run one schedule exactly; after it ends, the remaining steps go to the thread that ran last
 * (or the first enabled one), as the explorer's own continuation does.
 */
export function replay(scn: Scenario, schedule: string[], opts: ExecOptions = {}): { ex: Execution; diverged: string | null } {
  const ex = new Execution(scn, { ...opts, trace: true });
  let diverged: string | null = null;
  for (let i = 0; i < schedule.length && !ex.failure; i++) {
    const idx = ex.tasks.findIndex((t) => t.name === schedule[i]);
    if (idx < 0 || !ex.enabled().includes(idx)) {
      diverged = `step ${i}: thread ${schedule[i]} ${idx < 0 ? 'does not exist' : 'is not runnable'} here`;
      break;
    }
    ex.step(idx);
  }
  if (!ex.failure && !diverged) {
    for (let n = 0; n < DEFAULT_MAX_DEPTH && !ex.failure; n++) {
      const en = ex.enabled();
      if (!en.length) break;
      const last = ex.choices.at(-1) ?? -1;
      ex.step(en.includes(last) ? last : en[0]);
    }
    if (!ex.failure) ex.end();
  }
  return { ex, diverged };
}
