// The explorer's strategies, one file each behind one interface (result.ts Strategy: a scenario
// and options in, each strategy's own settings among them, an ExploreResult out), gathered in
// STRATEGIES below, as Shuttle's scheduler/ does:
//  - dpor.ts:    exhaustive, dynamic partial-order reduction with sleep sets, atomic blocks and
//                state caching; split into jobs for workers (parallel.ts) and shards (shard.ts)
//  - naive.ts:   every interleaving, no reduction (to measure and test what DPOR saves)
//  - bounded.ts: every schedule with at most K preemptions, K = 0, 1, … (CHESS)
//  - pct.ts:     randomized priority scheduling with d-1 change points (PCT)
//  - replay.ts:  one schedule, exactly
// Reporting is apart (report.ts), as is the state store (fpstore.ts, given as options.store) and
// what a state is (state.ts).
import type { BoundedOptions, PctOptions, Strategy } from './result.ts';
import { exploreDpor } from './dpor.ts';
import { exploreDfs } from './naive.ts';
import { exploreBounded } from './bounded.ts';
import { explorePct } from './pct.ts';

export * from './result.ts';
export { dporJobs, exploreDpor, exploreDporSplit, mergeJobResults, runDporJobs, warmAccessLog, withSharedStates, type DporJob } from './dpor.ts';
export { exploreDfs } from './naive.ts';
export { exploreBounded } from './bounded.ts';
export { explorePct, rng } from './pct.ts';
export { replay } from './replay.ts';
export { multinomial, sci } from './report.ts';

/** The strategies by name, one interface (scenario and options in, ExploreResult out). */
export const STRATEGIES: { dpor: Strategy; naive: Strategy; bounded: Strategy<BoundedOptions>; pct: Strategy<PctOptions> } = {
  dpor: exploreDpor,
  naive: exploreDfs,
  bounded: exploreBounded,
  pct: explorePct,
};
