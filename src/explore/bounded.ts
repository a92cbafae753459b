// CHESS iterative context bounding (Musuvathi and Qadeer, PLDI 2007): every schedule with at most
// K preemptions, K = 0, 1, …; the first counterexample found has the fewest preemptions.
import type { Scenario } from '../scenario/loader.ts';
import { exploreDfs } from './naive.ts';
import type { BoundedOptions, ExploreResult } from './result.ts';

/** CHESS iterative preemption bounding: K = 0, 1, … up to `opts.preemptions`; the first failure has the fewest preemptions. */
export function exploreBounded(scn: Scenario, opts: BoundedOptions): ExploreResult & { bound: number } {
  const { preemptions: maxK, ...rest } = opts;
  let total = 0, steps = 0, t0 = Date.now(), last: ExploreResult | null = null;
  for (let k = 0; k <= maxK; k++) {
    const r = exploreDfs(scn, { ...rest, preemptionBound: k });
    total += r.executions;
    steps += r.steps;
    last = r;
    if (r.counterexample || (r.complete && r.maxDepth === 0)) return { ...r, executions: total, steps, bound: k, elapsedMs: Date.now() - t0 };
  }
  return { ...last!, executions: total, steps, bound: maxK, mode: `bounded(${maxK})`, elapsedMs: Date.now() - t0 };
}
