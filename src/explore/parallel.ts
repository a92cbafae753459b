// Exhaustive DPOR on several worker threads. The run is split into independent jobs at a fixed
// depth (dporJobs); workers take jobs as they free up, and the results are merged in job order.
// With state caching the jobs share one store (sharedstore.ts): a job does not explore again below
// a state another has finished, so the executions depend on which job finished first, and vary
// from run to run; the verdict does not. Without, they are those of exploreDporSplit on one thread.
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import type { Scenario } from '../scenario/loader.ts';
import { dporJobs, mergeJobResults, notRun, withSharedStates, type ExploreOptions, type ExploreResult } from './explorer.ts';
import { SharedStates, sharedStoreBuffers } from './sharedstore.ts';

export const DEFAULT_SPLIT_DEPTH = 8;
export const defaultWorkers = () => Math.max(1, availableParallelism());

export async function exploreDporParallel(scn: Scenario, workers: number, opts: ExploreOptions & { splitDepth?: number } = {}): Promise<ExploreResult> {
  const t0 = Date.now();
  const jobs = dporJobs(scn, opts.splitDepth ?? DEFAULT_SPLIT_DEPTH, opts);
  const results: Array<ExploreResult | undefined> = new Array(jobs.length);
  const { progress, onExecution, ...plain } = opts; // functions do not cross to workers
  void onExecution;
  const shared = opts.states ? sharedStoreBuffers() : undefined;
  const pool = Array.from({ length: Math.min(workers, jobs.length) }, () =>
    new Worker(new URL('./worker-entry.mjs', import.meta.url), { workerData: { scn, opts: plain, shared } }),
  );
  let next = 0, executions = 0, states = 0, finished = 0;
  const cap = opts.maxExecutions ?? Infinity;
  // the first job (in order) with a counterexample: later jobs cannot change the merged result
  let firstFailure = Infinity;
  await Promise.all(
    pool.map(
      (w) =>
        new Promise<void>((resolve, reject) => {
          const feed = () => {
            const ms = opts.maxMs === undefined ? undefined : opts.maxMs - (Date.now() - t0);
            if (next >= jobs.length || (next > firstFailure && !opts.all) || executions >= cap || (ms !== undefined && ms <= 0)) {
              w.postMessage(null);
              return resolve();
            }
            const id = next++;
            w.postMessage({ id, job: jobs[id], max: cap - executions, ms });
          };
          w.on('message', (m: { id: number; r: ExploreResult }) => {
            results[m.id] = m.r;
            executions += m.r.executions;
            states += m.r.states ?? 0;
            finished++;
            if (m.r.counterexample) firstFailure = Math.min(firstFailure, m.id);
            progress?.({ executions, steps: 0, depth: m.r.maxDepth, elapsedMs: Date.now() - t0, jobs: [finished, jobs.length], ...(opts.states ? { states } : {}) });
            feed();
          });
          w.on('error', reject);
          feed();
        }),
    ),
  );
  await Promise.all(pool.map((w) => w.terminate()));
  // jobs never run (a failure or the cap came first) end the merge as "not complete"
  const done: ExploreResult[] = [];
  for (const r of results) {
    if (!r) {
      done.push(notRun());
      break;
    }
    done.push(r);
  }
  const r = mergeJobResults(done, t0);
  return { ...(shared ? withSharedStates(r, new SharedStates(shared)) : r), mode: `dpor, ${pool.length} workers` };
}
