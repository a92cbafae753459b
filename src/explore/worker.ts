// A worker thread of the parallel explorer: runs DPOR jobs it is sent and posts their results.
import { parentPort, workerData } from 'node:worker_threads';
import { exploreDpor, warmAccessLog, type DporJob, type ExploreOptions } from './explorer.ts';
import type { Scenario } from '../scenario/loader.ts';
import { SharedStates, type SharedStoreBuffers } from './sharedstore.ts';

const { scn, opts, shared } = workerData as { scn: Scenario; opts: ExploreOptions; shared?: SharedStoreBuffers };
const states = shared && new SharedStates(shared);
// this worker's jobs share one access log, warmed up once (as on one thread: runDporJobs)
const accessLog = states && opts.atomic ? warmAccessLog(scn, opts) : undefined;
// what it records from now on goes to the journal the workers share (sharedstore.ts)
if (states && accessLog) accessLog.join(states.journal);
parentPort!.on('message', (m: { id: number; job: DporJob; max: number; ms?: number } | null) => {
  if (!m) return void parentPort!.close();
  const r = exploreDpor(scn, { ...opts, job: m.job, maxExecutions: m.max, maxMs: m.ms, shared: states, accessLog });
  parentPort!.postMessage({ id: m.id, r });
});
