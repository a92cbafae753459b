// The explorer: DPOR reaches every outcome naive enumeration reaches, with fewer executions;
// counterexamples replay exactly; bounded and random modes behave as documented.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseScenario, loadScenarioFile } from '../src/scenario/loader.ts';
import { exploreBounded, exploreDfs, exploreDpor, explorePct, replay } from '../src/explore/explorer.ts';
import { decodeSchedule, encodeSchedule } from '../src/explore/schedule.ts';
import type { Execution } from '../src/explore/execution.ts';
import type { StateEntry } from '../src/explore/fpstore.ts';
import { cli } from './bundled.ts';

// A store through a mapping races a pwrite of the same BAR bytes through the device fd: the final
// load sees one value or the other.
const RACE = loadScenarioFile('scenarios/races/store-vs-pwrite.yaml');

const outcome = (ex: Execution) => JSON.stringify(ex.run.steps.map((s) => [s.thread, s.index, s.result]).sort());

test('DPOR reaches exactly the outcomes naive enumeration reaches, in fewer executions', () => {
  const naive = new Set<string>(), dpor = new Set<string>();
  const n = exploreDfs(RACE, { onExecution: (ex) => naive.add(outcome(ex)) });
  const d = exploreDpor(RACE, { onExecution: (ex) => dpor.add(outcome(ex)) });
  assert.ok(n.complete && d.complete);
  assert.deepEqual([...dpor].sort(), [...naive].sort());
  // the load sees either write
  const loads = [...naive].map((o) => JSON.parse(o).find((x: [string, number]) => x[0] === 'cpu' && x[1] === 1)[2].value);
  assert.deepEqual([...new Set(loads)].sort(), [0x11, 0x22]);
  assert.ok(d.executions < n.executions, `dpor ${d.executions} vs naive ${n.executions}`);
  assert.equal(d.counterexample, null);
});

test('a mutant is caught, its counterexample replays to the same failure, and the schedule string round-trips', () => {
  const scn = loadScenarioFile('scenarios/races/fault-vs-perm-revoke.yaml');
  const r = exploreDpor(scn, { mutant: 'M1' });
  assert.ok(r.counterexample);
  assert.equal(r.counterexample.invariant, 'no-stale-pte');
  const s = encodeSchedule(r.counterexample.schedule);
  assert.deepEqual(decodeSchedule(s), r.counterexample.schedule);
  const { ex, diverged } = replay(scn, decodeSchedule(s), { mutant: 'M1' });
  assert.equal(diverged, null);
  assert.equal(ex.failure?.invariant, 'no-stale-pte');
  assert.equal(ex.failure?.message, r.counterexample.message);
  // the real design passes the same schedule
  const real = replay(scn, decodeSchedule(s), {});
  assert.equal(real.ex.failure, null);
});

test('a schedule that names a thread which cannot run is reported as diverged', () => {
  const scn = loadScenarioFile('scenarios/races/fault-vs-perm-revoke.yaml');
  assert.match(replay(scn, ['nobody'], {}).diverged ?? '', /nobody does not exist/);
});

test('iterative preemption bounding finds the counterexample with the fewest preemptions', () => {
  const scn = loadScenarioFile('scenarios/races/fault-vs-perm-revoke.yaml');
  const b = exploreBounded(scn, { preemptions: 3, mutant: 'M1' });
  assert.ok(b.counterexample);
  assert.ok(b.counterexample.preemptions <= b.bound);
  // no schedule with fewer preemptions fails
  if (b.bound > 0) assert.equal(exploreDfs(scn, { mutant: 'M1', preemptionBound: b.bound - 1 }).counterexample, null);
  // and the real design passes every schedule within the bound
  assert.equal(exploreBounded(scn, { preemptions: 2 }).counterexample, null);
});

test('PCT: the same seed gives the same runs; the mutant is found with enough runs', () => {
  const scn = loadScenarioFile('scenarios/races/fault-vs-perm-revoke.yaml');
  const a = explorePct(scn, { runs: 200, seed: 7, mutant: 'M1' });
  const b = explorePct(scn, { runs: 200, seed: 7, mutant: 'M1' });
  assert.deepEqual({ ...a, elapsedMs: 0 }, { ...b, elapsedMs: 0 });
  assert.ok(a.counterexample, 'PCT with 200 runs finds the M1 race');
  assert.equal(explorePct(scn, { runs: 50, seed: 7 }).counterexample, null);
});

test('a lock-order inversion is a violation (lockdep), and the real deadlock it allows is found too', async () => {
  const { readFileSync } = await import('node:fs');
  // the v5 deadlock scenario without its declared finding
  const src = readFileSync('scenarios/races/nvgrace-read-vs-mmap.yaml', 'utf8').replace(/expect_violations:[\s\S]*$/, '');
  const scn = parseScenario(src, 'nvgrace-read-vs-mmap.yaml');
  const r = exploreDpor(scn, { kernel: 'series-v4' });
  assert.equal(r.counterexample?.invariant, 'no-deadlock');
  assert.match(r.counterexample!.message, /lock order inversion: .*mmap_lock.*memory_lock/);
  // drive the interleaving by hand: the reader takes memory_lock for read, the mapper takes mmap_lock
  // for write and sleeps on memory_lock, the reader's copy_to_user then sleeps on mmap_lock
  const { Execution } = await import('../src/explore/execution.ts');
  const ex = new Execution(scn, { kernel: 'series-v4' });
  const [reader, mapper, vmm] = ['reader', 'mapper', 'vmm'].map((n) => ex.tasks.findIndex((t) => t.name === n));
  const holds = (i: number, lock: string) => ex.tasks[i].held.some((h) => h.lock.name.endsWith(lock));
  while (!holds(reader, 'memory_lock')) ex.step(reader);
  while (!ex.tasks[mapper].blocked) ex.step(mapper);
  assert.ok(holds(mapper, 'mmap_lock'));
  while (!ex.tasks[reader].blocked) ex.step(reader);
  while (!ex.tasks[vmm].blocked && !ex.tasks[vmm].done) ex.step(vmm);
  assert.deepEqual(ex.enabled(), []);
  ex.end();
  const dl = ex.run.k.violations.find((v) => v.message.startsWith('deadlock:'));
  assert.ok(dl, 'every thread sleeps: a deadlock');
  assert.match(dl.message, /reader waits at down_read mm1\.mmap_lock/);
  assert.match(dl.message, /mapper waits at down_write gh0\.memory_lock/);
});

test('DPOR on 2 worker threads gives the same executions, verdict and counterexample as on one', async () => {
  const { exploreDporParallel, DEFAULT_SPLIT_DEPTH } = await import('../src/explore/parallel.ts');
  const { exploreDporSplit } = await import('../src/explore/explorer.ts');
  const scn = loadScenarioFile('scenarios/races/fault-vs-perm-revoke.yaml');
  for (const mutant of [undefined, 'M1']) {
    const one = exploreDporSplit(scn, DEFAULT_SPLIT_DEPTH, { mutant });
    const two = await exploreDporParallel(scn, 2, { mutant });
    assert.equal(two.executions, one.executions);
    assert.equal(two.steps, one.steps);
    assert.equal(two.complete, one.complete);
    assert.deepEqual(two.counterexample, one.counterexample);
  }
});

test('jobs sharing one state store (on one thread or on workers) need fewer executions than jobs on their own, with the same verdict', async () => {
  const { exploreDporParallel, DEFAULT_SPLIT_DEPTH } = await import('../src/explore/parallel.ts');
  const { exploreDporSplit, replay } = await import('../src/explore/explorer.ts');
  const scn = loadScenarioFile('scenarios/races/fault-vs-revoke.yaml');
  for (const mutant of [undefined, 'M1']) {
    const opts = { kernel: 'series-v4', mutant, states: true, atomic: true };
    const alone = exploreDporSplit(scn, DEFAULT_SPLIT_DEPTH, opts, false);
    const shared = exploreDporSplit(scn, DEFAULT_SPLIT_DEPTH, opts);
    const workers = await exploreDporParallel(scn, 2, opts);
    for (const r of [shared, workers]) {
      assert.equal(r.complete, alone.complete, `${mutant}: ${r.mode}`);
      assert.equal(r.counterexample?.invariant, alone.counterexample?.invariant, `${mutant}: ${r.mode}`);
      if (r.counterexample) assert.ok(replay(scn, r.counterexample.schedule, { kernel: 'series-v4', mutant }).ex.failure, 'the counterexample replays');
    }
    if (!mutant) {
      assert.ok(shared.executions < alone.executions, `shared ${shared.executions} < alone ${alone.executions}`);
      // the store holds each state once, where jobs on their own each store their own copies
      assert.ok(shared.states! < alone.states!, `shared ${shared.states} < alone ${alone.states}`);
    }
  }
});

test('a thread reuses the shared states another published only when, with atomic blocks, their access logs share a journal', async () => {
  const { exploreDpor, warmAccessLog } = await import('../src/explore/explorer.ts');
  const { SharedStates, sharedStoreBuffers } = await import('../src/explore/sharedstore.ts');
  const scn = loadScenarioFile('scenarios/races/fault-vs-revoke.yaml');
  for (const [atomic, journal] of [[true, false], [true, true], [false, false]]) {
    const opts = { kernel: 'series-v4', states: true, atomic };
    const bufs = sharedStoreBuffers(1 << 16, 1 << 20, 1 << 14);
    const mine = new SharedStates(bufs), other = new SharedStates(bufs); // two threads' views
    assert.notEqual(mine.publisher, other.publisher);
    const log = () => {
      if (!atomic) return undefined;
      const l = warmAccessLog(scn, opts);
      if (journal) l.join(mine.journal);
      return l;
    };
    const first = exploreDpor(scn, { ...opts, shared: mine, accessLog: log() });
    assert.ok(first.complete && mine.size > 0, 'a complete search publishes its states');
    const elsewhere = exploreDpor(scn, { ...opts, shared: other, accessLog: log() });
    assert.equal(elsewhere.complete, true);
    if (atomic && !journal) assert.equal(elsewhere.executions, first.executions, 'another thread whose log cannot vouch explores on its own');
    else assert.ok(elsewhere.executions < first.executions, `${atomic ? 'a shared journal' : 'no atomic blocks'}: ${elsewhere.executions} < ${first.executions}`);
  }
});

test('check --shard I/N on every shard, merged, gives the executions, verdict and first counterexample of one run', async () => {
  const { DEFAULT_SPLIT_DEPTH } = await import('../src/explore/parallel.ts');
  const { exploreDporSplit } = await import('../src/explore/explorer.ts');
  const { exploreShard, mergeShards } = await import('../src/explore/shard.ts');
  const file = 'scenarios/races/fault-vs-perm-revoke.yaml';
  const scn = loadScenarioFile(file);
  // plain DPOR, and check's defaults (state caching and atomic blocks: each shard's jobs keep
  // their own store and access log, as the jobs of a split run apart do)
  for (const reductions of [{}, { states: true, atomic: true }])
    for (const mutant of [null, 'M1']) {
      const one = exploreDporSplit(scn, DEFAULT_SPLIT_DEPTH, { kernel: 'series-v4', mutant, ...reductions }, false);
      for (const n of [1, 3, 5]) {
        const docs = Array.from({ length: n }, (_, i) => exploreShard(scn, file, { index: i + 1, count: n }, DEFAULT_SPLIT_DEPTH, { kernel: 'series-v4', mutant, ...reductions }));
        // the documents cross a process boundary as JSON
        const { result } = mergeShards(docs.reverse().map((d) => JSON.parse(JSON.stringify(d))));
        const what = `${JSON.stringify(reductions)} ${mutant} ${n} shard(s)`;
        assert.equal(result.executions, one.executions, what);
        assert.equal(result.steps, one.steps, what);
        assert.equal(result.states, one.states, what);
        assert.equal(result.complete, one.complete, what);
        assert.deepEqual(result.counterexample, one.counterexample, what);
      }
    }
  // a missing shard never passes for a complete search; shards of another search are refused
  const a = exploreShard(scn, file, { index: 1, count: 2 }, DEFAULT_SPLIT_DEPTH, { kernel: 'series-v4', mutant: null });
  assert.equal(mergeShards([a]).result.complete, false);
  const b = exploreShard(scn, file, { index: 2, count: 2 }, DEFAULT_SPLIT_DEPTH, { kernel: 'series-v4', mutant: 'M1' });
  assert.throws(() => mergeShards([a, b]), /different search/);
});

test('exit codes: 1 a violation, 0 exhausted, 3 cut short, bounded or randomized', async () => {
  const { verdictExit } = await import('../src/cli/main.ts');
  const scn = loadScenarioFile('scenarios/races/fault-vs-revoke.yaml');
  assert.equal(verdictExit(exploreDpor(scn, {})), 0);
  assert.equal(verdictExit(exploreDpor(scn, { kernel: 'series-v4', mutant: 'no-zap' })), 1);
  const cut = exploreDpor(scn, { maxExecutions: 3 });
  assert.equal(cut.complete, false);
  assert.equal(verdictExit(cut), 3);
  assert.equal(verdictExit(exploreBounded(scn, { preemptions: 0 })), 3);
  assert.equal(verdictExit(explorePct(scn, { runs: 5, seed: 1 })), 3);
});

test('a declared finding hides only the violations its message pattern names: another of the same invariant is still a counterexample', async () => {
  const { readFileSync } = await import('node:fs');
  const { isExpected } = await import('../src/scenario/loader.ts');
  const src = readFileSync('scenarios/races/nvgrace-read-vs-mmap.yaml', 'utf8');
  const declared = parseScenario(src, 'nvgrace-read-vs-mmap.yaml');
  assert.equal(exploreDpor(declared, { kernel: 'series-v4', atomic: true, states: true }).counterexample, null, 'the declared inversion and deadlock are expected');
  // the same declaration with a pattern that names a different pair of locks: the inversion is news
  const other = parseScenario(src.replace(/message: '[^']*'/, "message: 'lock order inversion: mapper: mm1.mmap_lock (w) then gh0.dmabuf_lock (w)*'"), 'nvgrace-read-vs-mmap.yaml');
  const r = exploreDpor(other, { kernel: 'series-v4', atomic: true, states: true });
  assert.equal(r.counterexample?.invariant, 'no-deadlock');
  const findings = declared.expectViolations['series-v4'];
  assert.ok(isExpected(findings, { invariant: 'no-deadlock', message: 'deadlock: reader waits at down_read mm1.mmap_lock; mapper waits at down_write gh0.memory_lock' }));
  assert.ok(!isExpected(findings, { invariant: 'no-deadlock', message: 'deadlock: vmm waits at down_write gh0.memory_lock' }));
  assert.ok(!isExpected(findings, { invariant: 'lifetime', message: 'deadlock: mapper waits at down_write gh0.memory_lock' }));
  // a bare invariant name still expects any message
  assert.ok(isExpected([{ invariant: 'no-deadlock' }], { invariant: 'no-deadlock', message: 'anything' }));
});

test('v6/v8 locking against the last close: fault vs DMA_BUF_REVOKE vs export vs close holds every invariant; without the fault\'s re-check under dmabuf_lock (M22) an entry survives the permanent revoke', () => {
  const scn = loadScenarioFile('scenarios/races/v6-fault-revoke-export-close.yaml');
  for (const kernel of ['series-v6', 'series-v8']) {
    const r = exploreDpor(scn, { kernel, atomic: true, states: true });
    assert.ok(r.complete && !r.counterexample, `${kernel}: ${r.counterexample?.message}`);
  }
  assert.equal(exploreDpor(scn, { kernel: 'series-v8', mutant: 'M22', atomic: true, states: true }).counterexample?.invariant, 'no-stale-pte');
});

test('the race index gives the steps sharing a key with an event, latest first, each once, and forgets cut steps', async () => {
  const { RaceIndex } = await import('../src/explore/raceindex.ts');
  const { ev } = await import('../src/kernel/sched/sched.ts');
  const span = (space: string, lo: number) => ({ space, lo, hi: lo + 1, acc: 'w' as const });
  const steps = [
    ev('mutex_lock', 'a', 'w'),
    ev('insert', '', 'w', [], [span('mm1.pt', 0), span('mm1.pt', 8), span('mm1.leaves', 0)]),
    ev('write', 'b', 'w', [{ obj: 'a', acc: 'r' }]),
    ev('zap', '', 'w', [], [span('mm1.leaves', 0)]),
    ev('other', 'c', 'w'),
    ev('write', 'a', 'w', [{ obj: 'b', acc: 'r' }]),
  ];
  const index = new RaceIndex();
  steps.forEach((e, i) => index.add(i, e));
  // an event under several keys: the union of their lists, latest first, no step twice
  const probe = ev('probe', 'a', 'r', [{ obj: 'b', acc: 'r' }], [span('mm1.pt', 4), span('mm1.leaves', 0)]);
  assert.deepEqual(index.candidates(probe, 6), [5, 3, 2, 1, 0]);
  assert.deepEqual(index.candidates(probe, 3), [2, 1, 0]);
  assert.deepEqual(index.candidates(ev('x', 'c', 'r'), 6), [4]);
  assert.deepEqual(index.candidates(ev('x', 'zzz', 'r'), 6), []);
  // the same as a set of every listed step, sorted: what the merge replaces
  const naive = (e: typeof probe, before: number) => steps.map((_, i) => i).filter((i) => i < before && (steps[i].obj === e.obj || (steps[i].also ?? []).some((x) => x.obj === e.obj || (e.also ?? []).some((y) => y.obj === x.obj)) || (e.also ?? []).some((y) => y.obj === steps[i].obj) || (steps[i].spans ?? []).some((s) => (e.spans ?? []).some((t) => t.space === s.space)))).reverse();
  for (let b = 0; b <= 6; b++) assert.deepEqual(index.candidates(probe, b), naive(probe, b), `before ${b}`);
  index.truncate(3);
  assert.deepEqual(index.candidates(probe, 6), [2, 1, 0]);
  index.add(3, steps[5]);
  assert.deepEqual(index.candidates(probe, 6), [3, 2, 1, 0]);
});

test('merge prints what check prints: the counterexample with the fewest preemptions, and states summed over jobs said to be a sum', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vfio-sim-merge-'));
  // M1 on the DMABUF shape: the split's first counterexample has 3 preemptions, check's search 1
  const file = 'scenarios/shapes/dmabuf-mmap-vs-revoke-2x2.yaml';
  const one = JSON.parse(cli('check', file, '--mutant', 'M1', '--json').stdout);
  const shards = [1, 2].map((i) => {
    const out = join(dir, `s${i}.json`);
    writeFileSync(out, cli('check', file, '--mutant', 'M1', '--shard', `${i}/2`).stdout);
    return out;
  });
  const merged = cli('merge', ...shards, '--json');
  assert.equal(merged.status, 1, merged.stderr);
  const m = JSON.parse(merged.stdout);
  assert.equal(m.violation.invariant, one.violation.invariant);
  assert.equal(m.violation.preemptions, one.violation.preemptions, 'merge minimizes as check does');
  // without a violation every job runs on its own store: the states are a sum, and say so
  const race = 'scenarios/races/fault-vs-perm-revoke.yaml';
  const safe = [1, 2].map((i) => {
    const out = join(dir, `r${i}.json`);
    writeFileSync(out, cli('check', race, '--kernel', 'series-v4', '--shard', `${i}/2`).stdout);
    return out;
  });
  const sum = cli('merge', ...safe);
  assert.equal(sum.status, 0, sum.stderr);
  const jobs = JSON.parse(readFileSync(safe[0], 'utf8')).jobs_total as number;
  assert.match(sum.stdout, new RegExp(`state\\(s\\) stored by ${jobs} jobs with a store each`));
  assert.doesNotMatch(sum.stdout, /distinct state/);
  assert.equal(JSON.parse(cli('merge', ...safe, '--json').stdout).states_stores, jobs);
  // one search with one store counts distinct states, with no sum to own up to
  const single = JSON.parse(cli('check', race, '--kernel', 'series-v4', '--json').stdout);
  assert.equal(single.states_stores, undefined);
});

test('every strategy of the table takes a scenario and options and gives a result of one shape; a counterexample replays to its invariant', async () => {
  const { STRATEGIES } = await import('../src/explore/explorer.ts');
  // a load through a present PTE against memory off (naive enumeration is capped: it runs into
  // the hundreds of thousands even here)
  const scn = parseScenario(`name: load-vs-command
devices: [{ name: gpu0, profile: h100 }]
setup:
  - open: { path: /dev/vfio/devices/gpu0, as: dev }
  - mmap: { fd: dev, offset: 0, length: 8KiB, as: m }
  - load: { addr: m, offset: 0, width: 4 }
threads:
  vmm: [{ config_write: { fd: dev, reg: COMMAND, value: 0 } }]
  cpu: [{ load: { addr: m, offset: 0, width: 4 } }]
`);
  const own = { dpor: {}, naive: { maxExecutions: 2000 }, bounded: { preemptions: 2 }, pct: { runs: 300, seed: 3 } };
  for (const [name, run] of Object.entries(STRATEGIES) as Array<[keyof typeof own, (s: typeof scn, o: object) => import('../src/explore/result.ts').ExploreResult]>) {
    const safe = run(scn, { ...own[name], kernel: 'series-v4' });
    assert.equal(safe.counterexample, null, `${name}: the design as posted`);
    assert.ok(safe.executions >= 1 && safe.steps >= safe.executions && typeof safe.mode === 'string', name);
    // complete: every interleaving of the mode explored (naive's cap cuts it short; PCT never is)
    assert.equal(safe.complete, name === 'dpor' || name === 'bounded', `${name}: complete`);
    const bad = run(scn, { ...own[name], kernel: 'series-v4', mutant: 'no-zap' });
    assert.ok(bad.counterexample, `${name} catches no-zap`);
    const { ex } = replay(scn, bad.counterexample!.schedule, { kernel: 'series-v4', mutant: 'no-zap' });
    assert.equal(ex.failure?.invariant, bad.counterexample!.invariant, `${name}: the counterexample replays`);
  }
});

test('state caching stores its states through the store it is given (fpstore.ts interface)', async () => {
  const { MemFpStore } = await import('../src/explore/fpstore.ts');
  const scn = loadScenarioFile('scenarios/races/fault-vs-revoke.yaml');
  let sets = 0, gets = 0;
  class Counting extends MemFpStore {
    override get(fp: string) {
      gets++;
      return super.get(fp);
    }
    override set(fp: string, e: StateEntry) {
      sets++;
      super.set(fp, e);
    }
  }
  const mine = exploreDpor(scn, { kernel: 'series-v4', states: true, atomic: true, store: () => new Counting() });
  const plain = exploreDpor(scn, { kernel: 'series-v4', states: true, atomic: true });
  assert.equal(mine.executions, plain.executions);
  assert.equal(mine.states, plain.states);
  assert.ok(sets >= mine.states! && gets >= sets, `${sets} set(s), ${gets} get(s), ${mine.states} state(s)`);
});
