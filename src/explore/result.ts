// What every exploration strategy takes and gives back: options, progress, the result and its
// counterexample. Each strategy is one file (dpor.ts, naive.ts with bounded.ts, pct.ts, replay.ts;
// shard.ts splits DPOR across machines) and drives Executions (execution.ts), choosing the next
// task its own way.
import type { Scenario } from '../scenario/loader.ts';
import type { Execution, ExecOptions, Failure } from './execution.ts';
import type { SharedStates } from './sharedstore.ts';
import type { AccessLog } from './movers.ts';
import type { FingerprintStore } from './fpstore.ts';

export interface ExploreOptions extends ExecOptions {
  /** stop after this many executions (the result says it was cut short) */
  maxExecutions?: number;
  /** stop after this many milliseconds, checked after each execution (cut short, like maxExecutions) */
  maxMs?: number;
  /** steps in one execution before it is called a livelock */
  maxDepth?: number;
  /** called now and then with progress */
  progress?: (p: Progress) => void;
  /** called with every finished execution (tests compare what different modes reach) */
  onExecution?: (ex: Execution) => void;
  /**
   * exhaustive DPOR: cache the states reached (fingerprints of the kernel and of what each thread
   * has read) and do not explore again below a state explored before (stateful DPOR)
   */
  states?: boolean;
  /** run every execution to its end and go on after failures (the first is reported); `complete` then says the space was exhausted */
  all?: boolean;
  /**
   * exhaustive DPOR: run each thread's atomic blocks (lock acquisitions, one step that may race,
   * releases, and steps that commute with everything) without scheduling inside them (movers.ts)
   */
  atomic?: boolean;
  /**
   * atomic blocks: random executions (fixed seed) whose accesses fill the access log before the
   * search, after one per task that runs it whenever it can, so that the search seldom starts
   * again (default WARM_UP_RUNS; 0: none of either)
   */
  warmUp?: number;
  /** atomic blocks: called when the search starts again (what onExecution saw before is void) */
  onRestart?: () => void;
  /**
   * state caching in a split search: the store its jobs share (sharedstore.ts); a job looks up
   * states there and publishes its own once it has ended complete
   */
  shared?: SharedStates;
  /** atomic blocks: the access log to start from (dpor.ts warmAccessLog), shared by a thread's jobs */
  accessLog?: AccessLog;
  /** state caching: the store of visited states (default: in memory, fpstore.ts MemFpStore) */
  store?: () => FingerprintStore;
}

/** bounded.ts: every schedule with at most `preemptions` preemptions. */
export interface BoundedOptions extends ExploreOptions {
  preemptions: number;
}

/** pct.ts: `runs` randomized runs from `seed`, for bugs of depth `depth` (default 3). */
export interface PctOptions extends ExploreOptions {
  runs: number;
  seed: number;
  depth?: number;
}

export interface Progress {
  executions: number;
  steps: number;
  depth: number;
  elapsedMs: number;
  /** state caching: distinct states stored so far */
  states?: number;
  /** a split search: jobs finished, of how many (what is known of the remaining work) */
  jobs?: [number, number];
  /** DPOR: the choices on the search stack still to explore, each at least one more execution */
  pending?: number;
  /** randomized and bounded searches: executions planned in all */
  total?: number;
}

export interface Counterexample extends Failure {
  schedule: string[];
  preemptions: number;
}

export interface ExploreResult {
  mode: string;
  /** state caching: distinct states stored, and executions cut at a state explored before */
  states?: number;
  /**
   * jobs that each kept their own store (shards, or jobs run apart): `states` adds up this many
   * stores, in each of which a state counts once, so it is not a count of distinct states
   */
  statesStores?: number;
  /** atomic blocks: searches started again because an access contradicted a reduction */
  restarts?: number;
  statesCut?: number;
  /** the most steps each thread took in any execution (for the naive-count estimate) */
  threadSteps?: number[];
  executions: number;
  /** executions cut because every enabled thread was asleep (provably redundant) */
  sleepBlocked: number;
  steps: number;
  maxDepth: number;
  complete: boolean;
  counterexample: Counterexample | null;
  elapsedMs: number;
}

/** Steps in one execution before it is called a livelock. */
export const DEFAULT_MAX_DEPTH = 20000;

/** Preemptions in an execution: switches away from a thread that could have gone on. */
export function preemptionsOf(ex: Execution, enabledAt: number[][]): number {
  let n = 0;
  for (let i = 1; i < ex.choices.length; i++) if (ex.choices[i] !== ex.choices[i - 1] && enabledAt[i].includes(ex.choices[i - 1])) n++;
  return n;
}

/** The result of a job that was never run: it leaves the merged search incomplete. */
export const notRun = (): ExploreResult => ({ mode: 'dpor', executions: 0, sleepBlocked: 0, steps: 0, maxDepth: 0, complete: false, counterexample: null, elapsedMs: 0 });

/** A strategy: explore a scenario's interleavings under its options (its own settings among them). */
export type Strategy<O extends ExploreOptions = ExploreOptions> = (scn: Scenario, opts: O) => ExploreResult;
