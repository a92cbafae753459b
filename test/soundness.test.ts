// Soundness of the explorer's reduction, as a property: on small generated races (2-3 threads of up
// to 3 operations in all: loads and stores on pages of one BAR mapping, COMMAND and PM_CTRL writes,
// FLR, DMA_BUF_REVOKE, munmap, mprotect, close) exhaustive DPOR reaches exactly the set of end states
// (finalFingerprint: every result, page table, buffer, device, config byte, memory byte and
// violation) that naive enumeration of every interleaving reaches; so do the jobs of a split search
// sharing one state store, as worker threads do. Cases naive enumeration cannot
// finish within its cap are discarded, not counted. Runs on the faithful model and on mutants that
// break invariants, so sets with violations are compared too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { readdirSync } from 'node:fs';
import { loadScenarioFile, parseScenario, type Scenario } from '../src/scenario/loader.ts';
import { dporJobs, exploreDfs, exploreDpor, warmAccessLog, type ExploreOptions } from '../src/explore/explorer.ts';
import { SharedStates, sharedStoreBuffers } from '../src/explore/sharedstore.ts';
import { finalFingerprint } from '../src/explore/fingerprint.ts';
import { mappedRace } from './bundled.ts';

const NAIVE_CAP = 3000;
const PAGES = 4;

type Op =
  | { k: 'load' | 'store'; page: number; value: number }
  | { k: 'command'; on: boolean }
  | { k: 'power'; d3: boolean }
  | { k: 'flr' }
  | { k: 'revoke' }
  | { k: 'munmap'; page: number }
  | { k: 'close' }
  | { k: 'mprotect'; page: number; write: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ k: fc.constantFrom('load' as const, 'store' as const), page: fc.integer({ min: 0, max: PAGES - 1 }), value: fc.integer({ min: 1, max: 255 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('command' as const), on: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('power' as const), d3: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('flr' as const) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('revoke' as const) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('munmap' as const), page: fc.integer({ min: 0, max: PAGES - 1 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('close' as const) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('mprotect' as const), page: fc.integer({ min: 0, max: PAGES - 1 }), write: fc.boolean() }) },
);
// Thread t0 makes one operation of any kind; t1 one of any kind too, or loads and stores; t2 loads
// and stores. Loads and stores on pages set up already mapped are one step each until a revocation
// zaps them (then they fault): the spaces stay small enough for naive enumeration. (t1 made only
// loads and stores until a longer run found a case with two operations of other kinds: FOUND below.)
const shortArb: fc.Arbitrary<Op> = fc.record({ k: fc.constantFrom('load' as const, 'store' as const), page: fc.integer({ min: 0, max: PAGES - 2 }), value: fc.integer({ min: 1, max: 255 }) });
const caseArb = fc.tuple(fc.array(opArb, { minLength: 1, maxLength: 1 }), fc.oneof({ weight: 2, arbitrary: fc.array(shortArb, { minLength: 1, maxLength: 2 }) }, { weight: 1, arbitrary: fc.array(opArb, { minLength: 1, maxLength: 1 }) }), fc.array(shortArb, { minLength: 0, maxLength: 1 }));

function yamlOf(threads: Op[][]): string {
  const step = (o: Op): string => {
    switch (o.k) {
      case 'load': return `load: { addr: m, offset: ${o.page * 4096}, width: 4 }`;
      case 'store': return `store: { addr: m, offset: ${o.page * 4096}, width: 4, value: ${o.value} }`;
      case 'command': return `config_write: { fd: dev, reg: COMMAND, value: ${o.on ? 2 : 0} }`;
      case 'power': return `config_write: { fd: dev, reg: PM_CTRL, value: ${o.d3 ? 3 : 0} }`;
      case 'flr': return 'config_write: { fd: dev, reg: DEVCTL, value: 0x8000 }';
      case 'revoke': return 'ioctl: { fd: dev, op: VFIO_DEVICE_FEATURE, flags: [set], feature: DMA_BUF_REVOKE, dmabuf_fd: buf }';
      case 'munmap': return `munmap: { addr: m, offset: ${o.page * 4096}, length: 4KiB }`;
      case 'close': return 'close: { fd: dev }';
      case 'mprotect': return `mprotect: { addr: m, offset: ${o.page * 4096}, length: 4KiB, prot: [read${o.write ? ', write' : ''}] }`;
    }
  };
  const lines = [
    'name: generated',
    'kernels: [series-v4]',
    'devices:',
    '  - { name: gpu0, profile: h100 }',
    'setup:',
    '  - open: { path: /dev/vfio/devices/gpu0, as: dev }',
    '  - ioctl: { fd: dev, op: VFIO_DEVICE_FEATURE, flags: [get], feature: DMA_BUF, region_index: 0, ranges: [{ offset: 0, length: 64KiB }], as: buf }',
    `  - mmap: { fd: dev, offset: 0, length: ${PAGES * 4}KiB, as: m }`,
    // fault in every page but the last, so some accesses are one step and some fault
    ...Array.from({ length: PAGES - 1 }, (_, i) => `  - store: { addr: m, offset: ${i * 4096}, width: 4, value: ${0x10 + i} }`),
    'threads:',
  ];
  threads.forEach((ops, i) => {
    if (!ops.length) return;
    lines.push(`  t${i}:`);
    for (const o of ops) lines.push(`    - ${step(o)}`);
  });
  return lines.join('\n') + '\n';
}

/**
 * The jobs of a split at `depth` run one after another against one shared state store (and one
 * access log with atomic blocks), every execution to its end: the end states they reach together.
 */
function sharedJobs(scn: Scenario, opts: ExploreOptions, depth: number, threads = 1): { ends: Set<string> } {
  // `threads` views of one store, each with its own access log (sharing a journal), as workers
  // have; the jobs go to them in turn
  const bufs = sharedStoreBuffers(1 << 14, 1 << 20, 1 << 16);
  const views = Array.from({ length: threads }, () => {
    const shared = new SharedStates(bufs);
    const accessLog = opts.atomic ? warmAccessLog(scn, opts) : undefined;
    if (threads > 1) accessLog?.join(shared.journal);
    return { shared, accessLog };
  });
  const ends = new Set<string>();
  for (const [i, job] of dporJobs(scn, depth, opts).entries()) {
    const mine = new Set<string>(); // a job started again counts from its last start only
    const d = exploreDpor(scn, { ...opts, all: true, states: true, job, ...views[i % threads], onRestart: () => mine.clear(), onExecution: (ex) => mine.add(finalFingerprint(ex)) });
    assert.ok(d.complete, 'DPOR job finished');
    for (const f of mine) ends.add(f);
  }
  return { ends };
}

function compare(threads: Op[][], mutant: string | null): boolean {
  const scn = parseScenario(yamlOf(threads));
  const naive = new Set<string>();
  const n = exploreDfs(scn, { mutant, all: true, maxExecutions: NAIVE_CAP, onExecution: (ex) => naive.add(finalFingerprint(ex)) });
  if (!n.complete) return false; // too big for naive enumeration: not a case
  for (const [states, atomic] of [[false, false], [true, false], [false, true], [true, true]]) {
    const reduced = new Set<string>();
    // a search started again (atomic blocks) counts from its last start only
    const d = exploreDpor(scn, { mutant, all: true, states, atomic, onRestart: () => reduced.clear(), onExecution: (ex) => reduced.add(finalFingerprint(ex)) });
    assert.ok(d.complete, 'DPOR finished');
    const missing = [...naive].filter((f) => !reduced.has(f));
    const extra = [...reduced].filter((f) => !naive.has(f));
    const how = [states && 'state caching', atomic && 'atomic blocks'].filter(Boolean).join(' and ');
    assert.deepEqual({ missing, extra }, { missing: [], extra: [] }, `DPOR${how ? ` with ${how}` : ''} and naive differ on\n${yamlOf(threads)}`);
    if (!atomic) assert.ok(d.executions <= n.executions);
  }
  // split into jobs that share one state store, on one thread (one access log) and on two (two
  // logs sharing a journal), as worker threads do
  for (const [atomic, views] of [[false, 1], [true, 1], [true, 2]] as const) {
    const reduced = sharedJobs(scn, { mutant, atomic }, 2, views).ends;
    const missing = [...naive].filter((f) => !reduced.has(f));
    const extra = [...reduced].filter((f) => !naive.has(f));
    assert.deepEqual({ missing, extra }, { missing: [], extra: [] }, `DPOR jobs sharing a state store${atomic ? ' with atomic blocks' : ''} on ${views} thread(s) and naive differ on\n${yamlOf(threads)}`);
  }
  return true;
}

for (const mutant of [null, 'no-zap', 'M1']) {
  test(`DPOR, with and without state caching and atomic blocks, reaches exactly the end states and violations naive enumeration reaches (${mutant ?? 'faithful model'})`, () => {
    let cases = 0;
    fc.assert(
      fc.property(caseArb, (threads) => {
        if (compare(threads, mutant)) cases++;
      }),
      { numRuns: 16, seed: 0x5eed + (mutant?.length ?? 0), endOnFailure: true },
    );
    assert.ok(cases >= 4, `only ${cases} generated case(s) were small enough for naive enumeration`);
  });
}

// Cases longer runs of the generator found, kept as found: DPOR missed an end state of each.
const FOUND: Array<{ why: string; threads: Op[][] }> = [
  {
    // munmap of a page inside a mapping splits the VMA at both ends first; the unmap then announced
    // the page-table span of the VMA as it was split (ending where the page starts, so empty), and
    // the load of that page, which munmap takes away, did not race with it
    why: 'munmap of one page vs a load of it',
    threads: [[{ k: 'load', page: 1, value: 1 }], [{ k: 'munmap', page: 1 }]],
  },
];
test('cases found by longer runs of the generator: DPOR reaches the end states naive enumeration reaches', () => {
  for (const { why, threads } of FOUND) for (const mutant of [null, 'no-zap']) assert.ok(compare(threads, mutant), `${why}: small enough for naive enumeration`);
});

// Lock-aware reduction: read-only sections of one mutex (the fault handler's under the buffer's
// resv lock) are not ordered by their lock events; only the data they name orders them. On every
// bundled race scenario plain DPOR can finish, the lock-aware relation must reach exactly the end
// states of the plain one (which orders every pair of sections, and is itself checked against naive
// enumeration above). A section declared read-only that writes, or that reads without naming it,
// makes this fail (checked by hand: fault-vs-revoke and revoke-twice then differ). Under a mutant
// that leaves a buffer OK while memory is off, the invariants break in the middle of executions:
// an execution that replays such a step must report it too (close-after-disable differed).
test('lock-aware DPOR, with state caching, with atomic blocks, reaches exactly the end states plain DPOR reaches, on every bundled race', () => {
  let compared = 0, fewer = 0, cut = 0, atomicFewer = 0;
  for (const f of readdirSync('scenarios/races').filter((x) => x.endsWith('.yaml')).sort()) {
    const scn = loadScenarioFile(`scenarios/races/${f}`);
    const kernel = scn.kernels.includes('series-v4') ? 'series-v4' : scn.kernels[0];
    for (const mutant of [null, 'M1', 'no-revoke-on-disable']) {
      const plain = new Set<string>(), aware = new Set<string>();
      const p = exploreDpor(scn, { kernel, mutant, all: true, lockAware: false, maxExecutions: 6000, onExecution: (ex) => plain.add(finalFingerprint(ex)) });
      if (!p.complete) continue;
      const l = exploreDpor(scn, { kernel, mutant, all: true, onExecution: (ex) => aware.add(finalFingerprint(ex)) });
      assert.ok(l.complete, f);
      assert.deepEqual([...aware].sort(), [...plain].sort(), `${f} (${mutant ?? 'faithful'}): lock-aware and plain DPOR reach different end states`);
      assert.ok(l.executions <= p.executions, `${f}: lock-aware ${l.executions} > plain ${p.executions}`);
      // state caching (stateful DPOR): the same end states, stopping below states explored before
      const cached = new Set<string>();
      const c = exploreDpor(scn, { kernel, mutant, all: true, states: true, onExecution: (ex) => cached.add(finalFingerprint(ex)) });
      assert.ok(c.complete, f);
      assert.deepEqual([...cached].sort(), [...plain].sort(), `${f} (${mutant ?? 'faithful'}): DPOR with state caching reaches different end states`);
      cut += c.statesCut ?? 0;
      // atomic blocks, with and without state caching: the same end states again
      for (const states of [false, true]) {
        const blocks = new Set<string>();
        const a = exploreDpor(scn, { kernel, mutant, all: true, states, atomic: true, onRestart: () => blocks.clear(), onExecution: (ex) => blocks.add(finalFingerprint(ex)) });
        assert.ok(a.complete, f);
        assert.deepEqual([...blocks].sort(), [...plain].sort(), `${f} (${mutant ?? 'faithful'}): DPOR with atomic blocks${states ? ' and state caching' : ''} reaches different end states`);
        if (a.executions < l.executions) atomicFewer++;
      }
      // split into jobs sharing one state store: the same end states (a job that took another's
      // states without their summaries misses some here)
      for (const views of [1, 2]) {
        const jobs = sharedJobs(scn, { kernel, mutant, atomic: true }, 4, views);
        assert.deepEqual([...jobs.ends].sort(), [...plain].sort(), `${f} (${mutant ?? 'faithful'}): DPOR jobs sharing a state store on ${views} thread(s) reach different end states`);
      }
      compared++;
      if (l.executions < p.executions) fewer++;
    }
  }
  assert.ok(compared >= 30, `only ${compared} run(s) compared`);
  assert.ok(fewer >= 3, 'the lock-aware relation saved executions somewhere');
  assert.ok(cut > 0, 'state caching cut some execution');
  assert.ok(atomicFewer >= 3, 'atomic blocks saved executions somewhere');
});

// Page tables built while threads race: the first faults allocate the tables other faults then
// read, a revocation zaps a huge leaf, munmap frees the tables. Atomic blocks let a read of a slot
// that points to a table commute with fills of it (movers.ts); the end states must still be exactly
// those of DPOR without blocks (checked against naive enumeration above).
test('atomic blocks reach the end states of DPOR without them while page tables are allocated, zapped and freed', async () => {
  const huge = '0x7e0000000000';
  const races: Array<[string, string, string[], string[], string?]> = [
    ['two first faults vs memory off', '64KiB', [], ['a: [{ load: { addr: m, offset: 0, width: 4 } }]', 'b: [{ load: { addr: m, offset: 4096, width: 4 } }]', 'c: [{ config_write: { fd: dev, reg: COMMAND, value: 0 } }]']],
    ['PMD-order faults vs memory off', '4MiB', [], ['a: [{ load: { addr: m, offset: 0, width: 4 } }]', 'b: [{ load: { addr: m, offset: 0x1000, width: 4 } }]', 'c: [{ config_write: { fd: dev, reg: COMMAND, value: 0 } }]'], huge],
    ['faults vs munmap of the tables', '64KiB', ['load: { addr: m, offset: 0x8000, width: 4 }'], ['a: [{ load: { addr: m, offset: 0, width: 4 } }]', 'b: [{ munmap: { addr: m, length: 64KiB } }]', 'c: [{ load: { addr: m, offset: 0x1000, width: 4 } }]']],
    ['fault vs munmap then fault', '4MiB', [], ['a: [{ load: { addr: m, offset: 0, width: 4 } }]', 'b: [{ munmap: { addr: m, offset: 2MiB, length: 2MiB } }, { load: { addr: m, offset: 0x1000, width: 4 } }]'], huge],
  ];
  for (const [what, length, setup, threads, at] of races) {
    const scn = await mappedRace(length, setup, threads, at);
    const plain = new Set<string>();
    const p = exploreDpor(scn, { all: true, onExecution: (ex) => plain.add(finalFingerprint(ex)) });
    assert.ok(p.complete, what);
    for (const states of [false, true]) {
      const blocks = new Set<string>();
      const a = exploreDpor(scn, { all: true, atomic: true, states, onRestart: () => blocks.clear(), onExecution: (ex) => blocks.add(finalFingerprint(ex)) });
      assert.ok(a.complete, what);
      assert.deepEqual([...blocks].sort(), [...plain].sort(), `${what}: atomic blocks${states ? ' with state caching' : ''} reach different end states`);
      assert.ok(a.executions < p.executions, `${what}: the blocks saved executions`);
    }
  }
});
