// The scheduler and its locks, driven by hand: every task is stepped explicitly, so each test pins
// down exactly when a lock is granted, when a task sleeps and who is woken by a release.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Sched, RwSem, Mutex, Completion, SchedError, ev, type KGen, type Task } from '../src/kernel/sched/sched.ts';

/** Step `t` until it is blocked or done, or until `pred` holds; at most `max` steps. */
function runUntil(s: Sched, t: Task, pred: () => boolean = () => false, max = 50): void {
  for (let i = 0; i < max && !t.done && !t.blocked && !pred(); i++) s.step(t);
}
/** Step `t` until its next pending event is `op` (the task has done everything before it). */
function runTo(s: Sched, t: Task, op: string): void {
  runUntil(s, t, () => t.pending.op === op);
  assert.equal(t.pending.op, op, `${t.name} should stop before ${op}, is at ${t.pending.op} (blocked ${t.blocked}, done ${t.done})`);
}

/** A task that takes `sem` in `mode`, marks the critical section, releases it. */
function* rwUser(sem: RwSem, mode: 'r' | 'w', log: string[], name: string): KGen {
  if (mode === 'r') yield* sem.down_read();
  else yield* sem.down_write();
  log.push(`${name} in`);
  yield ev('critical', 'x');
  log.push(`${name} out`);
  if (mode === 'r') yield* sem.up_read();
  else yield* sem.up_write();
  yield ev('after', 'y');
}

describe('RwSem', () => {
  test('readers share the lock', () => {
    const s = new Sched();
    const sem = new RwSem(s, 'dev.memory_lock', 'memory_lock');
    const log: string[] = [];
    const r1 = s.spawn('r1', rwUser(sem, 'r', log, 'r1'), null);
    const r2 = s.spawn('r2', rwUser(sem, 'r', log, 'r2'), null);
    runTo(s, r1, 'critical');
    runTo(s, r2, 'critical');
    assert.equal(r1.blocked, false);
    assert.equal(r2.blocked, false);
    assert.deepEqual([...sem.readers].map((t) => t.name).sort(), ['r1', 'r2']);
    assert.equal(sem.writer, null);
    assert.ok(sem.heldBy(r1, 'r') && sem.heldBy(r2, 'r'));
    assert.deepEqual(log, ['r1 in', 'r2 in']);
    runUntil(s, r1);
    runUntil(s, r2);
    assert.ok(r1.done && r2.done);
    assert.equal(sem.readers.size, 0);
    assert.deepEqual(r1.held, []);
  });

  test('a writer excludes readers and other writers; a held reader excludes a writer', () => {
    const s = new Sched();
    const sem = new RwSem(s, 'l', 'l');
    const log: string[] = [];
    const w = s.spawn('w', rwUser(sem, 'w', log, 'w'), null);
    const r = s.spawn('r', rwUser(sem, 'r', log, 'r'), null);
    const w2 = s.spawn('w2', rwUser(sem, 'w', log, 'w2'), null);
    runTo(s, w, 'critical');
    assert.equal(sem.writer, w);
    runUntil(s, r);
    runUntil(s, w2);
    assert.ok(r.blocked, 'reader sleeps while a writer holds the lock');
    assert.ok(w2.blocked, 'second writer sleeps while a writer holds the lock');
    assert.deepEqual(log, ['w in']);
    assert.throws(() => s.step(r), SchedError, 'a blocked task cannot be stepped');

    // and the other way round: a reader holds, a writer waits
    const s2 = new Sched();
    const sem2 = new RwSem(s2, 'l2', 'l2');
    const log2: string[] = [];
    const rr = s2.spawn('rr', rwUser(sem2, 'r', log2, 'rr'), null);
    const ww = s2.spawn('ww', rwUser(sem2, 'w', log2, 'ww'), null);
    runTo(s2, rr, 'critical');
    runUntil(s2, ww);
    assert.ok(ww.blocked);
    assert.equal(sem2.writer, null);
    assert.deepEqual(log2, ['rr in']);
  });

  test('writer preference: a queued writer blocks new readers (and read trylock fails)', () => {
    const s = new Sched();
    const sem = new RwSem(s, 'l', 'l');
    const log: string[] = [];
    const r1 = s.spawn('r1', rwUser(sem, 'r', log, 'r1'), null);
    const w = s.spawn('w', rwUser(sem, 'w', log, 'w'), null);
    const r2 = s.spawn('r2', rwUser(sem, 'r', log, 'r2'), null);
    runTo(s, r1, 'critical');
    runUntil(s, w);
    assert.ok(w.blocked, 'writer waits for the reader');
    runUntil(s, r2);
    assert.ok(r2.blocked, 'a new reader must queue behind the waiting writer even though only readers hold the lock');
    assert.equal(sem.readers.size, 1);
    assert.deepEqual(sem.waiters.map((x) => [x.t.name, x.mode]), [['w', 'w'], ['r2', 'r']]);

    let got: boolean | undefined;
    const tr = s.spawn('tr', (function* () {
      got = yield* sem.down_read_trylock();
    })(), null);
    runUntil(s, tr);
    assert.equal(got, false, 'down_read_trylock fails while a writer waits');
    let gotW: boolean | undefined;
    const tw = s.spawn('tw', (function* () {
      gotW = yield* sem.down_write_trylock();
    })(), null);
    runUntil(s, tw);
    assert.equal(gotW, false, 'down_write_trylock fails while the lock is held');
  });

  test('release hands the lock to the head waiter: one writer, then the readers at the head of the queue', () => {
    // Only queues whose readers all sit ahead of the next writer: how Linux treats readers queued
    // *behind* a writer (rwsem_mark_wake wakes them too) is left out: the model's sources do not settle it.
    const s = new Sched();
    const sem = new RwSem(s, 'l', 'l');
    const log: string[] = [];
    const r1 = s.spawn('r1', rwUser(sem, 'r', log, 'r1'), null);
    const w1 = s.spawn('w1', rwUser(sem, 'w', log, 'w1'), null);
    const r2 = s.spawn('r2', rwUser(sem, 'r', log, 'r2'), null);
    const r3 = s.spawn('r3', rwUser(sem, 'r', log, 'r3'), null);
    const w2 = s.spawn('w2', rwUser(sem, 'w', log, 'w2'), null);
    runTo(s, r1, 'critical');
    for (const t of [w1, r2, r3, w2]) {
      runUntil(s, t);
      assert.ok(t.blocked, `${t.name} queues`);
    }
    // r1 releases: the lock goes to w1 (the head), which is woken already owning it
    runTo(s, r1, 'after');
    assert.equal(sem.writer, w1);
    assert.equal(w1.blocked, false);
    assert.ok(w1.held.some((h) => h.lock === sem && h.mode === 'w'));
    for (const t of [r2, r3, w2]) assert.ok(t.blocked, `${t.name} still waits`);
    runTo(s, w1, 'critical');
    assert.deepEqual(log, ['r1 in', 'r1 out', 'w1 in']);
    // w1 releases: r2 and r3 get it together; w2 keeps waiting
    runTo(s, w1, 'after');
    assert.equal(sem.writer, null);
    assert.deepEqual([...sem.readers].map((t) => t.name).sort(), ['r2', 'r3']);
    assert.equal(r2.blocked, false);
    assert.equal(r3.blocked, false);
    assert.ok(w2.blocked);
    assert.deepEqual(sem.waiters.map((x) => x.t.name), ['w2']);
    // r2 leaves: r3 still holds, so nothing is handed off
    runTo(s, r2, 'critical');
    runTo(s, r2, 'after');
    assert.ok(w2.blocked);
    runTo(s, r3, 'critical');
    runTo(s, r3, 'after');
    assert.equal(sem.writer, w2, 'the last reader out hands off to the writer');
    assert.equal(w2.blocked, false);
    runUntil(s, w2);
    assert.ok(w2.done);
    assert.equal(sem.writer, null);
    assert.equal(sem.readers.size, 0);
    assert.equal(sem.waiters.length, 0);
    assert.deepEqual(log, ['r1 in', 'r1 out', 'w1 in', 'w1 out', 'r2 in', 'r2 out', 'r3 in', 'r3 out', 'w2 in', 'w2 out']);
  });

  test('a woken writer holds the lock before it runs: a reader arriving in between must wait', () => {
    const s = new Sched();
    const sem = new RwSem(s, 'l', 'l');
    const log: string[] = [];
    const r1 = s.spawn('r1', rwUser(sem, 'r', log, 'r1'), null);
    const w = s.spawn('w', rwUser(sem, 'w', log, 'w'), null);
    runTo(s, r1, 'critical');
    runUntil(s, w);
    runTo(s, r1, 'after');
    assert.equal(sem.writer, w);
    const late = s.spawn('late', rwUser(sem, 'r', log, 'late'), null);
    runUntil(s, late);
    assert.ok(late.blocked, 'no lock stealing from a writer the lock was handed to');
  });

  test('releasing a lock the task does not hold is an error', () => {
    const s = new Sched();
    const sem = new RwSem(s, 'l', 'l');
    const t = s.spawn('t', (function* () {
      yield* sem.up_read();
    })(), null);
    s.step(t);
    assert.throws(() => s.step(t), /does not hold/);
  });
});

describe('Mutex', () => {
  function* mutexUser(m: Mutex, log: string[], name: string): KGen {
    yield* m.lock();
    log.push(`${name} in`);
    yield ev('critical', 'x');
    log.push(`${name} out`);
    yield* m.unlock();
    yield ev('after', 'y');
  }

  test('excludes, and unlock hands ownership to the first waiter in FIFO order', () => {
    const s = new Sched();
    const m = new Mutex(s, 'dmabuf0.resv', 'dma_resv');
    const log: string[] = [];
    const a = s.spawn('a', mutexUser(m, log, 'a'), null);
    const b = s.spawn('b', mutexUser(m, log, 'b'), null);
    const c = s.spawn('c', mutexUser(m, log, 'c'), null);
    runTo(s, a, 'critical');
    assert.equal(m.owner, a);
    assert.ok(m.isLocked());
    runUntil(s, b);
    runUntil(s, c);
    assert.ok(b.blocked && c.blocked);
    assert.deepEqual(log, ['a in']);
    runTo(s, a, 'after');
    assert.equal(m.owner, b, 'ownership passes to the first waiter');
    assert.equal(b.blocked, false);
    assert.ok(c.blocked);
    assert.ok(b.held.some((h) => h.lock === m));
    runUntil(s, b);
    assert.equal(m.owner, c);
    runUntil(s, c);
    assert.equal(m.owner, null);
    assert.ok(!m.isLocked());
    assert.deepEqual(log, ['a in', 'a out', 'b in', 'b out', 'c in', 'c out']);
  });

  test('unlock by a task that does not own it is an error', () => {
    const s = new Sched();
    const m = new Mutex(s, 'm', 'm');
    const a = s.spawn('a', (function* () {
      yield* m.lock();
      yield ev('hold', 'x');
    })(), null);
    runTo(s, a, 'hold');
    const b = s.spawn('b', (function* () {
      yield* m.unlock();
    })(), null);
    s.step(b);
    assert.throws(() => s.step(b), /does not hold/);
  });
});

describe('Completion', () => {
  test('complete before wait: the waiter does not sleep (and only one wait is satisfied)', () => {
    const s = new Sched();
    const c = new Completion(s, 'comp');
    c.complete();
    const log: string[] = [];
    const w1 = s.spawn('w1', (function* () {
      yield* c.wait_for_completion();
      log.push('w1 through');
    })(), null);
    runUntil(s, w1);
    assert.ok(w1.done, 'the first waiter passes without sleeping');
    assert.deepEqual(log, ['w1 through']);
    // complete() accounts for exactly one waiter, as in Linux (complete_all is the other one)
    const w2 = s.spawn('w2', (function* () {
      yield* c.wait_for_completion();
      log.push('w2 through');
    })(), null);
    runUntil(s, w2);
    assert.ok(w2.blocked, 'a second waiter sleeps: one complete() satisfies one wait');
  });

  test('complete after wait wakes the sleeping waiter; reinit forgets an unconsumed complete', () => {
    const s = new Sched();
    const c = new Completion(s, 'comp');
    const log: string[] = [];
    const w = s.spawn('w', (function* () {
      yield* c.wait_for_completion();
      log.push('through');
    })(), null);
    runUntil(s, w);
    assert.ok(w.blocked);
    assert.deepEqual(log, []);
    const cpl = s.spawn('completer', (function* () {
      yield ev('complete', 'comp');
      c.complete();
    })(), null);
    runUntil(s, cpl);
    assert.equal(w.blocked, false, 'complete() wakes the waiter');
    runUntil(s, w);
    assert.ok(w.done);
    assert.deepEqual(log, ['through']);

    c.complete();
    c.reinit();
    const w3 = s.spawn('w3', c.wait_for_completion(), null);
    runUntil(s, w3);
    assert.ok(w3.blocked, 'after reinit_completion the earlier complete no longer counts');
  });
});

describe('Lockdep', () => {
  function* nested(outer: Mutex, inner: Mutex): KGen {
    yield* outer.lock();
    yield* inner.lock();
    yield ev('critical', 'x');
    yield* inner.unlock();
    yield* outer.unlock();
  }

  test('reports an inversion of two lock classes taken in opposite orders by two tasks, even without a deadlock', () => {
    const s = new Sched();
    const a = new Mutex(s, 'gpu0.memory_lock', 'memory_lock');
    const b = new Mutex(s, 'dmabuf0.resv', 'dma_resv');
    const t1 = s.spawn('t1', nested(a, b), null);
    runUntil(s, t1);
    assert.ok(t1.done);
    assert.deepEqual(s.lockdep.inversions, [], 'one order alone is fine');
    const t2 = s.spawn('t2', nested(b, a), null);
    runUntil(s, t2);
    assert.ok(t2.done, 'run one after the other, nothing deadlocks');
    assert.equal(s.lockdep.inversions.length, 1);
    const msg = s.lockdep.inversions[0];
    assert.match(msg, /inversion/);
    assert.match(msg, /t2/);
    assert.match(msg, /t1/);
    assert.match(msg, /memory_lock/);
    assert.match(msg, /resv/);
  });

  test('the same order in both tasks, and re-taking another instance of the same class, are not inversions', () => {
    const s = new Sched();
    const a = new Mutex(s, 'a', 'A');
    const b = new Mutex(s, 'b', 'B');
    runUntil(s, s.spawn('t1', nested(a, b), null));
    runUntil(s, s.spawn('t2', nested(a, b), null));
    // two instances of one class (two DMABUFs' resv locks) nested both ways: lockdep keys by class
    const r1 = new Mutex(s, 'dmabuf1.resv', 'dma_resv');
    const r2 = new Mutex(s, 'dmabuf2.resv', 'dma_resv');
    runUntil(s, s.spawn('t3', nested(r1, r2), null));
    runUntil(s, s.spawn('t4', nested(r2, r1), null));
    assert.deepEqual(s.lockdep.inversions, []);
  });

  test('a three-class cycle across three tasks is found', () => {
    const s = new Sched();
    const a = new Mutex(s, 'a', 'A'), b = new Mutex(s, 'b', 'B'), c = new Mutex(s, 'c', 'C');
    runUntil(s, s.spawn('t1', nested(a, b), null));
    runUntil(s, s.spawn('t2', nested(b, c), null));
    assert.deepEqual(s.lockdep.inversions, []);
    runUntil(s, s.spawn('t3', nested(c, a), null));
    assert.equal(s.lockdep.inversions.length, 1);
  });

  test('an rwsem taken under a mutex in one task and the reverse in another is an inversion', () => {
    const s = new Sched();
    const mm = new RwSem(s, 'mm1.mmap_lock', 'mmap_lock');
    const ml = new RwSem(s, 'gpu0.memory_lock', 'memory_lock');
    const t1 = s.spawn('mmap', (function* () {
      yield* mm.down_write();
      yield* ml.down_write();
      yield* ml.up_write();
      yield* mm.up_write();
    })(), null);
    runUntil(s, t1);
    const t2 = s.spawn('pread', (function* () {
      yield* ml.down_read();
      yield* mm.down_read();
      yield* mm.up_read();
      yield* ml.up_read();
    })(), null);
    runUntil(s, t2);
    assert.ok(t1.done && t2.done);
    assert.equal(s.lockdep.inversions.length, 1);
  });
});

describe('Sched', () => {
  test('step runs one event at a time and records it; a finished task cannot be stepped', () => {
    const s = new Sched();
    s.recordTrace = true;
    const order: string[] = [];
    const t = s.spawn('t', (function* () {
      order.push('a');
      yield ev('e1', 'o1');
      order.push('b');
      yield ev('e2', 'o2', 'r');
      order.push('c');
    })(), 'owner');
    assert.equal(t.owner, 'owner');
    const r0 = s.step(t);
    assert.equal(r0.ev.op, 'start');
    assert.deepEqual(order, ['a']);
    assert.equal(t.pending.op, 'e1');
    const r1 = s.step(t);
    assert.equal(r1.ev.op, 'e1');
    assert.deepEqual(order, ['a', 'b']);
    const r2 = s.step(t);
    assert.equal(r2.ev.op, 'e2');
    assert.ok(t.done);
    assert.deepEqual(s.trace.map((x) => x.ev.op), ['start', 'e1', 'e2']);
    assert.deepEqual(s.trace.map((x) => x.step), [0, 1, 2]);
    assert.throws(() => s.step(t), SchedError);
    assert.throws(() => s.cur(), SchedError, 'no task is current between steps');
  });
});

test('a read of an rwsem the task already reads: lockdep warns (down_read is not a recursive read), the holds nest, nothing throws', async () => {
  const { parseScenario } = await import('../src/scenario/loader.ts');
  const { runScenario } = await import('../src/scenario/report.ts');
  // nvgrace-gpu's read holds memory_lock for read across the copy to the user buffer; a buffer on
  // the device's own BAR mapping faults, and the fault takes memory_lock for read again
  const scn = parseScenario(`name: nv
devices:
  - { name: gh0, profile: h100, driver: nvgrace-gpu }
threads:
  main:
    - open: { path: /dev/vfio/devices/gh0, as: dev }
    - ioctl: { fd: dev, op: VFIO_DEVICE_GET_REGION_INFO, index: 2, as: r2 }
    - mmap: { fd: dev, offset: 0, length: 64KiB, as: m }
    - read: { fd: dev, offset: r2.offset, length: 8, buf: m, expect: { ok: true, value: 8 } }
    - close: { fd: dev, expect: { ok: true } }
`, 'nv.yaml');
  const { result } = runScenario(scn, {});
  assert.ok(result.violations.some((v) => v.invariant === 'no-deadlock' && /possible recursive locking: main takes gh0.memory_lock \(read\)/.test(v.message)), JSON.stringify(result.violations));
  assert.deepEqual(result.problems.filter((p) => !/no-deadlock/.test(p)), []);
});
