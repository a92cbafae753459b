// Exhaustive DPOR across machines. The search is split into jobs at a fixed depth (dporJobs: the
// same split on every machine, since scenario, kernel and mutant determine it); shard i of N runs
// the jobs whose index is i-1 modulo N and writes their results as JSON; `vfio-sim merge` puts the
// job results of all N shards back in job order and merges them as one machine would
// (mergeJobResults): the same execution total, and the first counterexample in job order.
import { createHash } from 'node:crypto';
import type { Scenario } from '../scenario/loader.ts';
import { dporJobs, mergeJobResults, notRun, runDporJobs, type ExploreOptions, type ExploreResult } from './explorer.ts';

export interface ShardSpec {
  /** 1-based */
  index: number;
  count: number;
}

export class ShardError extends Error {}

export function parseShard(s: string): ShardSpec {
  const m = /^(\d+)\/(\d+)$/.exec(s.trim());
  const index = m ? Number(m[1]) : NaN, count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index < 1 || index > count) throw new ShardError(`--shard: expected I/N with 1 <= I <= N, got "${s}"`);
  return { index, count };
}

/** What a shard ran: enough for merge to check that the shards belong together and to add them up. */
export interface ShardDoc {
  vfio_sim_shard: 1;
  scenario: string;
  file: string;
  /** sha256 of the parsed scenario, kernel, mutant, split depth and reductions: shards of different searches do not merge */
  search: string;
  kernel: string;
  mutant: string | null;
  split_depth: number;
  /** the reductions the jobs ran with (state caching, atomic blocks) */
  states: boolean;
  atomic: boolean;
  shard: ShardSpec;
  jobs_total: number;
  /** the results of this shard's jobs, by job index */
  jobs: Array<{ job: number; result: ExploreResult }>;
  elapsed_ms: number;
}

export function searchId(scn: Scenario, kernel: string, mutant: string | null, depth: number, states: boolean, atomic: boolean): string {
  const big = (_: string, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v);
  return createHash('sha256').update(JSON.stringify({ scn, kernel, mutant, depth, states, atomic }, big)).digest('hex');
}

/** Run one shard's jobs in order; a shard stops at its own first counterexample (later jobs cannot change the merged verdict). */
export function exploreShard(scn: Scenario, file: string, shard: ShardSpec, depth: number, opts: ExploreOptions & { kernel: string; mutant: string | null }): ShardDoc {
  const t0 = Date.now();
  const all = dporJobs(scn, depth, opts);
  const mine = all.map((job, index) => ({ index, job })).filter((j) => j.index % shard.count === shard.index - 1);
  const out = runDporJobs(scn, mine, { ...opts, progress: undefined });
  return {
    vfio_sim_shard: 1, scenario: scn.name, file, search: searchId(scn, opts.kernel, opts.mutant, depth, !!opts.states, !!opts.atomic), kernel: opts.kernel, mutant: opts.mutant,
    split_depth: depth, states: !!opts.states, atomic: !!opts.atomic, shard, jobs_total: all.length, jobs: out, elapsed_ms: Date.now() - t0,
  };
}

/**
 * Merge the documents of every shard of one search. Jobs a shard did not reach (it stopped at a
 * counterexample or a budget) end the merge as not complete unless an earlier job's
 * counterexample decides the verdict first, exactly as on one machine.
 */
export function mergeShards(docs: ShardDoc[]): { first: ShardDoc; result: ExploreResult } {
  if (!docs.length) throw new ShardError('merge: no shard documents');
  const first = docs[0];
  for (const d of docs) {
    if (d?.vfio_sim_shard !== 1) throw new ShardError('merge: not a vfio-sim check --shard JSON document');
    if (d.search !== first.search) throw new ShardError(`merge: shard ${d.shard.index}/${d.shard.count} is of a different search (scenario, kernel, mutant, split or reductions) than shard ${first.shard.index}/${first.shard.count}`);
    if (d.shard.count !== first.shard.count) throw new ShardError(`merge: shard counts differ (${d.shard.count} and ${first.shard.count})`);
  }
  const seen = new Set(docs.map((d) => d.shard.index));
  if (seen.size !== docs.length) throw new ShardError('merge: a shard is given twice');
  const missing = Array.from({ length: first.shard.count }, (_, i) => i + 1).filter((i) => !seen.has(i));
  const byJob = new Map<number, ExploreResult>();
  for (const d of docs) for (const j of d.jobs) byJob.set(j.job, j.result);
  const ordered: ExploreResult[] = [];
  for (let j = 0; j < first.jobs_total; j++) {
    const r = byJob.get(j);
    if (!r) {
      ordered.push(notRun());
      break;
    }
    ordered.push(r);
    if (r.counterexample) break;
  }
  const result = mergeJobResults(ordered, Date.now());
  result.elapsedMs = Math.max(...docs.map((d) => d.elapsed_ms));
  result.mode = `dpor, ${first.shard.count} shard(s)${missing.length ? `, missing ${missing.join(', ')}` : ''}`;
  return { first, result };
}
