// Depth-first enumeration of every interleaving, without reduction (what DPOR is measured and
// tested against), optionally bounded in preemptions (bounded.ts).
import type { Scenario } from '../scenario/loader.ts';
import { Execution } from './execution.ts';
import { DEFAULT_MAX_DEPTH, preemptionsOf, type Counterexample, type ExploreOptions, type ExploreResult } from './result.ts';

/**
 * Depth-first enumeration without reduction, optionally bounded in preemptions. With a bound it
 * is CHESS's iterative context bounding for one K.
 */
export function exploreDfs(scn: Scenario, opts: ExploreOptions & { preemptionBound?: number } = {}): ExploreResult {
  const t0 = Date.now();
  const bound = opts.preemptionBound ?? Infinity;
  const maxExec = opts.maxExecutions ?? Infinity, maxDepth = opts.maxDepth ?? DEFAULT_MAX_DEPTH;
  const stack: Array<{ options: number[]; idx: number }> = [];
  let executions = 0, steps = 0, deepest = 0;
  let counterexample: Counterexample | null = null;
  let replayTo = 0;
  while (true) {
    const ex = new Execution(scn, opts);
    const enabledAt: number[][] = [];
    let pre = 0;
    for (let depth = 0; ; depth++) {
      const en = ex.runnable(depth, maxDepth, opts.all);
      if (!en) break;
      const last = ex.choices.at(-1) ?? -1;
      if (depth >= replayTo) {
        // the current thread first; switching away from it costs a preemption
        const options = en.includes(last) ? (pre < bound ? [last, ...en.filter((x) => x !== last)] : [last]) : en;
        stack[depth] = { options, idx: 0 };
      }
      const p = stack[depth].options[stack[depth].idx];
      if (last >= 0 && p !== last && en.includes(last)) pre++;
      enabledAt.push(en);
      ex.step(p);
      steps++;
      deepest = Math.max(deepest, depth + 1);
    }
    if (!ex.failure || opts.all) ex.end();
    executions++;
    opts.onExecution?.(ex);
    if (ex.failure) {
      counterexample ??= { ...ex.failure, schedule: ex.schedule(), preemptions: preemptionsOf(ex, enabledAt) };
      if (!opts.all) break;
    }
    if (opts.progress && executions % 64 === 0) opts.progress({ executions, steps, depth: deepest, elapsedMs: Date.now() - t0 });
    if (executions >= maxExec || (opts.maxMs !== undefined && Date.now() - t0 >= opts.maxMs)) return result(false);
    stack.length = ex.choices.length;
    let d = stack.length - 1;
    while (d >= 0 && stack[d].idx + 1 >= stack[d].options.length) d--;
    if (d < 0) return result(true);
    stack[d].idx++;
    stack.length = d + 1;
    replayTo = d + 1;
  }
  return result(false);

  function result(complete: boolean): ExploreResult {
    return { mode: bound === Infinity ? 'naive' : `bounded(${bound})`, executions, sleepBlocked: 0, steps, maxDepth: deepest, complete: complete && (!counterexample || !!opts.all), counterexample, elapsedMs: Date.now() - t0 };
  }
}
