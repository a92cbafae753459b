// Atomic blocks (src/explore/movers.ts): how steps are classified as movers from the access log,
// and that an access contradicting an earlier classification invalidates the search. The reduction
// itself is checked against naive enumeration in soundness.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Mutex, RwSem, Sched, Task, dependent, ev, type KGen } from '../src/kernel/sched/sched.ts';
import { AccessLog, extend } from '../src/explore/movers.ts';
import { mappedRace } from './bundled.ts';

const idle = function* (): KGen {};

/** A thread that loads 4 bytes at `offset` of the mapping `m`. */
const loadAt = (name: string, offset: number) => `${name}: [{ load: { addr: m, offset: ${offset}, width: 4 } }]`;
/** An execution, not yet stepped, of threads racing on a 64 KiB BAR0 mapping `m`. */
async function raceOf(setup: string[], threads: string[]) {
  const { Execution } = await import('../src/explore/execution.ts');
  return new Execution(await mappedRace('64KiB', setup, threads), {});
}
function world() {
  const sched = new Sched();
  const m = new Mutex(sched, 'dmabuf0.resv', 'dma_resv');
  const rw = new RwSem(sched, 'gpu0.memory_lock', 'memory_lock');
  const t0 = new Task(0, 't0', idle(), null), t1 = new Task(1, 't1', idle(), null);
  return { m, rw, t0, t1 };
}

test('lock acquisitions move right, releases left, and a block is R* N? L* with both-movers anywhere', () => {
  const { t0 } = world();
  const log = new AccessLog(false);
  assert.equal(log.kind(0, t0, ev('mutex_lock', 'dmabuf0.resv')), 'R');
  assert.equal(log.kind(0, t0, ev('down_read', 'gpu0.memory_lock', 'r')), 'R');
  assert.equal(log.kind(0, t0, ev('up_read', 'gpu0.memory_lock', 'r')), 'L');
  assert.equal(extend(0, 'R'), 0);
  assert.equal(extend(0, 'N'), 1);
  assert.equal(extend(1, 'B'), 1);
  assert.equal(extend(1, 'L'), 1);
  assert.equal(extend(1, 'N'), null, 'a second step that may race ends the block');
  assert.equal(extend(1, 'R'), null, 'an acquisition after the commit ends the block');
});

test('a step commutes (B) until another thread is seen touching the same thing unprotected; then the search is invalid', () => {
  const { t0, t1 } = world();
  const log = new AccessLog(false);
  const read = ev('READ(status)', 'dmabuf0.priv', 'r');
  log.record(0, t0, read);
  assert.equal(log.kind(0, t0, read), 'B', 'nobody else touches it');
  assert.equal(log.invalid, false);
  log.record(1, t1, ev('READ_ONCE(status)', 'dmabuf0.priv', 'r'));
  assert.equal(log.invalid, false, 'reads commute with reads');
  log.record(1, t1, ev('WRITE(status)', 'dmabuf0.priv', 'w'));
  assert.equal(log.invalid, true, 'a write by another thread contradicts the B it was classified as');
  assert.equal(log.kind(0, t0, read), 'N');
  log.restart();
  assert.equal(log.invalid, false);
  assert.equal(log.restarts, 1);
});

test('accesses under a lock both threads hold exclusively commute; two readers of a rwsem do not protect a write', () => {
  const { m, rw, t0, t1 } = world();
  const log = new AccessLog(false);
  t1.held.push({ lock: m, mode: 'w' });
  log.record(1, t1, ev('WRITE(status)', 'dmabuf0.priv', 'w'));
  t0.held.push({ lock: m, mode: 'w' });
  assert.equal(log.kind(0, t0, ev('READ(status)', 'dmabuf0.priv', 'r')), 'B', 'both under resv');
  t0.held.length = 0;
  assert.equal(log.kind(0, t0, ev('READ(status)', 'dmabuf0.priv', 'r')), 'N', 'not under resv');
  const u = new Task(2, 't2', idle(), null);
  u.held.push({ lock: rw, mode: 'r' });
  log.record(2, u, ev('WRITE(x)', 'x', 'w'));
  t0.held.push({ lock: rw, mode: 'r' });
  assert.equal(log.kind(0, t0, ev('READ(x)', 'x', 'r')), 'N', 'two readers of memory_lock can overlap');
  t0.held[0] = { lock: rw, mode: 'w' };
  assert.equal(log.kind(0, t0, ev('READ(x)', 'x', 'r')), 'B', 'a writer excludes the reader');
});

test('spans conflict only where they overlap (and share a page-table level)', () => {
  const { t0, t1 } = world();
  const log = new AccessLog(false);
  log.record(1, t1, ev('insert_pfn', '', 'w', undefined, [{ space: 'mm1.pt', lo: 0x2000, hi: 0x3000, acc: 'w', level: 0 }]));
  assert.equal(log.kind(0, t0, ev('walk', '', 'r', undefined, [{ space: 'mm1.pt', lo: 0x1000, hi: 0x2000, acc: 'r', level: 0 }])), 'B');
  assert.equal(log.kind(0, t0, ev('walk', '', 'r', undefined, [{ space: 'mm1.pt', lo: 0x2000, hi: 0x2001, acc: 'r' }])), 'N');
  assert.equal(log.kind(0, t0, ev('walk', '', 'r', undefined, [{ space: 'mm1.pt', lo: 0x2000, hi: 0x2001, acc: 'r', level: 1 }])), 'B');
});

test('an operation start reads bound names: it races only when some thread binds one', () => {
  const { t0 } = world();
  assert.equal(new AccessLog(false).kind(0, t0, ev('start', '', 'r')), 'B');
  assert.equal(new AccessLog(true).kind(0, t0, ev('start', '', 'r')), 'N');
});

test('a zap announces the leaves it clears: it commutes with a walk of an empty slot, not with one of a mapped page', async () => {
  // page 0 is mapped by the setup; f0 is about to load page 1, f1 page 0; the vmm disables memory
  const ex = await raceOf(['load: { addr: m, offset: 0, width: 4 }'], [loadAt('f0', 4096), loadAt('f1', 0), 'vmm: [{ config_write: { fd: dev, reg: COMMAND, value: 0 } }]']);
  const [f0, f1, vmm] = [0, 1, 2];
  ex.step(f0);
  ex.step(f1);
  while (ex.pending(vmm)!.op !== 'zap_page_range') ex.step(vmm);
  const zap = ex.pending(vmm)!;
  const miss = ex.pending(f0)!, hit = ex.pending(f1)!;
  assert.equal(miss.op, 'user_load');
  assert.equal(dependent(zap, miss), false, 'nothing to clear at page 1: the zap and the walk that misses there commute');
  assert.equal(dependent(zap, hit), true, 'the zap clears page 0, which the other load reads through');
  assert.ok(zap.spans!.some((s) => s.space === 'mm1.leaves' && s.acc === 'r' && s.hi - s.lo === 65536), 'it reads where leaves are over its whole range');
  const ptWrites = zap.spans!.filter((s) => s.space === 'mm1.pt' && s.acc === 'w');
  assert.deepEqual(ptWrites.map((s) => [s.hi - s.lo, s.level]), [[4096, 0]], 'it writes only the one PTE slot it clears');
});

test('a user access\'s walk reads only the translation it ends in: it commutes with a table allocation on its way, not with its own page\'s insert', async () => {
  const { Hasher, observe } = await import('../src/explore/state.ts');
  // nothing is mapped yet: f1's fault allocates the tables f0's and f2's walks pass through
  const ex = await raceOf([], [loadAt('f0', 0), loadAt('f1', 4096), loadAt('f2', 4096)]);
  const [f0, f1, f2] = [0, 1, 2];
  ex.step(f0);
  ex.step(f2);
  const walk0 = ex.pending(f0)!, walk2 = ex.pending(f2)!;
  assert.equal(walk0.op, 'user_load');
  const seen = () => {
    const h = new Hasher();
    observe(ex.run, walk0, h);
    return h.fp();
  };
  const before = seen();
  ex.step(f1);
  while (!ex.pending(f1)!.spans?.some((s) => s.acc === 'w' && s.level === 2)) ex.step(f1);
  const alloc = ex.pending(f1)!;
  assert.equal(dependent(alloc, walk0), false, 'a PMD table allocated on the way to no leaf changes no translation');
  ex.step(f1);
  assert.ok(ex.run.k.procs[0].mm.pt.isTable(walk0.spans![0].lo, 2), 'the PUD slot now points to a table');
  assert.equal(seen(), before, 'the walk of page 0 sees the same thing: no translation');
  while (ex.pending(f1)!.op !== 'insert_pfn') ex.step(f1);
  const insert = ex.pending(f1)!;
  assert.equal(dependent(insert, walk2), true, 'the insert makes the translation the walk of page 1 reads');
  assert.equal(dependent(insert, walk0), false, 'another page\'s insert does not');
});

test('random executions fill the access log before the search: it no longer starts again, and reaches the same end states', async () => {
  const { readFileSync } = await import('node:fs');
  const { parseScenario } = await import('../src/scenario/loader.ts');
  const { exploreDpor } = await import('../src/explore/dpor.ts');
  const { finalFingerprint } = await import('../src/explore/fingerprint.ts');
  const file = 'scenarios/fork-child-inherits-mappings.yaml';
  const scn = parseScenario(readFileSync(file, 'utf8'), file);
  const run = (warmUp?: number) => {
    let ends = new Set<string>();
    const r = exploreDpor(scn, { atomic: true, warmUp, onRestart: () => (ends = new Set()), onExecution: (ex) => void ends.add(finalFingerprint(ex)) });
    return { r, ends };
  };
  const cold = run(0), warm = run();
  assert.equal(cold.r.restarts, 1, 'without a warm-up the search learns a conflict the hard way');
  assert.equal(warm.r.restarts, 0);
  assert.ok(cold.r.complete && warm.r.complete);
  assert.deepEqual([...warm.ends].sort(), [...cold.ends].sort());
});

test('the warm-up lets each thread run first once: two threads faulting under one page table against a revoker need no restart', async () => {
  const { parseScenario } = await import('../src/scenario/loader.ts');
  const { exploreDpor } = await import('../src/explore/dpor.ts');
  const { shapeScenario } = await import('../bench/shapes.ts');
  // whichever thread faults first allocates the PTE table, on its mmap_lock retry; random
  // schedules of 32 runs let only f0 do it, and the search started again twice when f1 did
  const scn = parseScenario(shapeScenario(2, 1, 1));
  const r = exploreDpor(scn, { kernel: 'series-v4', atomic: true, states: true });
  assert.ok(r.complete);
  assert.equal(r.restarts, 0);
});

test('logs that share a journal learn each other\'s accesses: one thread\'s write invalidates what another assumed, once it takes the journal in', async () => {
  const { SharedStates, sharedStoreBuffers } = await import('../src/explore/sharedstore.ts');
  const { t0, t1 } = world();
  const bufs = sharedStoreBuffers(1 << 8, 1 << 14, 1 << 8);
  const a = new AccessLog(false), b = new AccessLog(false);
  a.join(new SharedStates(bufs).journal);
  b.join(new SharedStates(bufs).journal);
  const read = ev('READ(status)', 'dmabuf0.priv', 'r');
  b.record(0, t0, read);
  assert.equal(b.kind(0, t0, read), 'B', 'b has seen no other access');
  a.record(1, t1, ev('WRITE(status)', 'dmabuf0.priv', 'w')); // a's thread writes, unprotected
  assert.equal(b.invalid, false, 'not before b takes the journal in');
  b.absorb();
  assert.equal(b.invalid, true, 'the write contradicts b\'s assumption');
  b.restart();
  assert.equal(b.kind(0, t0, read), 'N', 'and from then on b knows the read can race');
  // a log that has not joined learns nothing
  const c = new AccessLog(false);
  c.record(0, t0, read);
  c.absorb();
  assert.equal(c.kind(0, t0, read), 'B');
});

test('a read of a slot that points to a table commutes with fills of it; a read of an empty slot, or a free of the tables, does not', () => {
  const { t0, t1 } = world();
  const slot = (acc: 'r' | 'w', flags: { table?: true; fill?: true } = {}) => ({ space: 'mm1.pt', lo: 0, hi: 0x200000, acc, level: 1, ...flags });
  const log = new AccessLog(false);
  // another thread allocates the PTE table under this PMD slot (a fill), in some execution
  log.record(1, t1, ev('pmd_alloc', '', 'r', undefined, [slot('w', { fill: true })]));
  assert.equal(log.kind(0, t0, ev('pud_none', '', 'r', undefined, [slot('r', { table: true })])), 'B', 'a table stays a table under fills');
  assert.equal(log.kind(0, t0, ev('pud_none', '', 'r', undefined, [slot('r')])), 'N', 'an empty slot may be filled meanwhile');
  assert.equal(log.invalid, false);
  // freeing the tables (munmap) writes every level: it contradicts the table read classified B
  log.record(1, t1, ev('unmap_region', 'mm1.vmas', 'w', undefined, [{ space: 'mm1.pt', lo: 0, hi: 0x10000, acc: 'w' }]));
  assert.equal(log.invalid, true);
  assert.equal(log.kind(0, t0, ev('pud_none', '', 'r', undefined, [slot('r', { table: true })])), 'N');
});

test('the kernel marks page-table slot reads of a table, and slot writes as fills; a range write is neither', async () => {
  const ex = await raceOf([], [loadAt('f0', 0), loadAt('f1', 4096), 'u: [{ munmap: { addr: m, length: 64KiB } }]']);
  const [f0, f1, u] = [0, 1, 2];
  const slots = (p: number) => ex.pending(p)!.spans!.filter((s) => s.space === 'mm1.pt' && s.level !== undefined && s.level > 0);
  const stepTo = (p: number, op: string) => {
    while (ex.pending(p)!.op !== op) ex.step(p);
  };
  // f0's first fault: nothing is mapped; the PUD slot is empty, and allocating the PMD table fills it
  stepTo(f0, 'pud_none');
  assert.deepEqual(slots(f0).map((s) => [s.level, s.acc, !!s.table]), [[2, 'r', false]]);
  stepTo(f0, 'pmd_alloc');
  assert.deepEqual(slots(f0).map((s) => [s.level, s.acc, !!s.fill, !!s.table]), [[2, 'w', true, false], [1, 'r', false, false]]);
  stepTo(f0, 'insert_pfn');
  assert.deepEqual(slots(f0).map((s) => [s.level, s.acc, !!s.fill, !!s.table]), [[2, 'r', false, true], [1, 'w', true, false]], 'the insert allocates the PTE table: the PUD slot points to a table now');
  while (!ex.tasks[f0].done) ex.step(f0);
  // f1's fault on the next page finds both tables
  stepTo(f1, 'pmd_alloc');
  assert.deepEqual(slots(f1).map((s) => [s.level, s.acc, !!s.table]), [[2, 'r', true], [1, 'r', true]]);
  while (!ex.tasks[f1].done) ex.step(f1);
  // munmap frees the tables: a write over every level, neither a fill nor a table read
  stepTo(u, 'unmap_region');
  const free = ex.pending(u)!.spans!.filter((s) => s.space === 'mm1.pt');
  assert.ok(free.length > 0 && free.every((s) => s.acc === 'w' && s.level === undefined && !s.fill && !s.table));
});
