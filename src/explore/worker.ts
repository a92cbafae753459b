// A worker thread of the parallel explorer: runs DPOR jobs it is sent and posts their results.
import { parentPort, workerData } from 'node:worker_threads';
import { exploreDpor, type DporJob, type ExploreOptions } from './explorer.ts';
import type { Scenario } from '../scenario/loader.ts';

const { scn, opts } = workerData as { scn: Scenario; opts: ExploreOptions };
parentPort!.on('message', (m: { id: number; job: DporJob; max: number; ms?: number } | null) => {
  if (!m) return void parentPort!.close();
  const r = exploreDpor(scn, { ...opts, job: m.job, maxExecutions: m.max, maxMs: m.ms });
  parentPort!.postMessage({ id: m.id, r });
});
