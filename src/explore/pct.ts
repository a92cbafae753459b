// PCT: randomized priority scheduling with d-1 change points (Burckhardt, Kothari, Musuvathi and
// Nagarakatte, ASPLOS 2010): each run finds a bug of depth d with probability at least 1/(n k^(d-1)).
import type { Scenario } from '../scenario/loader.ts';
import { Execution } from './execution.ts';
import { DEFAULT_MAX_DEPTH, preemptionsOf, type ExploreResult, type PctOptions } from './result.ts';

/** A small, fast, seedable PRNG (mulberry32): the same seed gives the same runs. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * PCT: each run gives the threads random distinct priorities and picks d-1 change points among the
 * k steps (k learned from the first run); the highest-priority enabled thread always runs, and at a
 * change point the running thread drops below every initial priority.
 */
export function explorePct(scn: Scenario, opts: PctOptions): ExploreResult {
  const t0 = Date.now();
  const { runs, seed } = opts;
  const d = opts.depth ?? 3;
  const rand = rng(seed);
  const maxDepth = opts.maxDepth ?? DEFAULT_MAX_DEPTH;
  let k = 0, steps = 0, executions = 0, deepest = 0;
  for (let r = 0; r < runs; r++) {
    const ex = new Execution(scn, opts);
    const prio = new Map<number, number>();
    const changes = new Set<number>();
    for (let i = 0; i < d - 1 && k > 0; i++) changes.add(1 + Math.floor(rand() * k));
    const enabledAt: number[][] = [];
    let low = 0;
    for (let depth = 0; depth < maxDepth; depth++) {
      if (ex.failure) break;
      const en = ex.enabled();
      if (!en.length) break;
      for (const t of en) if (!prio.has(t)) prio.set(t, 1000 + rand() * 1000);
      let best = en[0];
      for (const t of en) if (prio.get(t)! > prio.get(best)!) best = t;
      if (changes.has(depth)) {
        prio.set(best, -(++low));
        best = en[0];
        for (const t of en) if (prio.get(t)! > prio.get(best)!) best = t;
      }
      enabledAt.push(en);
      ex.step(best);
      steps++;
      deepest = Math.max(deepest, depth + 1);
    }
    if (!ex.failure) ex.end();
    executions++;
    k = Math.max(k, ex.choices.length);
    if (ex.failure) {
      return { mode: `pct(d=${d}, seed=${seed})`, executions, sleepBlocked: 0, steps, maxDepth: deepest, complete: false, counterexample: { ...ex.failure, schedule: ex.schedule(), preemptions: preemptionsOf(ex, enabledAt) }, elapsedMs: Date.now() - t0 };
    }
    if (opts.progress && executions % 64 === 0) opts.progress({ executions, steps, depth: deepest, elapsedMs: Date.now() - t0, total: runs });
  }
  return { mode: `pct(d=${d}, seed=${seed})`, executions, sleepBlocked: 0, steps, maxDepth: deepest, complete: false, counterexample: null, elapsedMs: Date.now() - t0 };
}
