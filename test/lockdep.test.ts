// Lockdep as the model runs it: Linux's dependency kinds and strong circles
// (Documentation/locking/lockdep-design.rst, "Recursive read locks"), trylocks, might_fault, and
// the scenarios that settle what lockdep reports: nvgrace-gpu's read against its own fault path,
// and the lab's mmap-vs-reset reproducer (opsound/vfio-dmabuf-lab tests/vfio_pci_mmap_reset_test.c).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Lockdep, Mutex, RwSem, Sched, ev, type KGen, type Task } from '../src/kernel/sched/sched.ts';
import { kernelFor, loadScenarioFile, parseScenario } from '../src/scenario/loader.ts';
import { runScenario } from '../src/scenario/report.ts';
import { exploreDpor } from '../src/explore/explorer.ts';

function runUntil(s: Sched, t: Task): void {
  for (let i = 0; i < 1000 && !t.done && !t.blocked; i++) s.step(t);
}

describe('lockdep: the kinds of a dependency and strong circles', () => {
  test('A -(ER)-> B then B -(SN)-> A is not a circle lockdep reports: a recursive reader gets B past a waiting writer', () => {
    const l = new Lockdep();
    l.record('A', 'ER', 'B', 'a');
    l.record('B', 'SN', 'A', 'b');
    assert.deepEqual(l.inversions, []);
  });

  test('the same circle with B held as a writer, or taken as a non-recursive reader, is reported', () => {
    const w = new Lockdep();
    w.record('A', 'ER', 'B', 'a');
    w.record('B', 'EN', 'A', 'b');
    assert.equal(w.inversions.length, 1);
    const r = new Lockdep();
    r.record('A', 'EN', 'B', 'a');
    r.record('B', 'SN', 'A', 'b');
    assert.deepEqual(r.inversions, ['lock order inversion: a; b']);
  });

  test('two readers in opposite orders: non-recursive (down_read) is a circle, recursive is not', () => {
    const n = new Lockdep();
    n.record('memory_lock', 'SN', 'mmap_lock', 'read');
    n.record('mmap_lock', 'SN', 'memory_lock', 'fault');
    assert.equal(n.inversions.length, 1);
    const rec = new Lockdep();
    rec.record('X', 'SR', 'Y', 'x');
    rec.record('Y', 'SR', 'X', 'y');
    assert.deepEqual(rec.inversions, []);
  });

  test('a longer path is strong only if no -(xR)-> is followed by an -(Sx)->; a second kind on an edge can make it strong', () => {
    const l = new Lockdep();
    l.record('A', 'EN', 'B', 'a');
    l.record('B', 'ER', 'C', 'b');
    l.record('C', 'SN', 'D', 'c'); // B -(ER)-> C -(SN)-> D: not strong
    l.record('D', 'EN', 'A', 'd');
    assert.deepEqual(l.inversions, []);
    l.record('B', 'EN', 'C', 'b2'); // now B -(EN)-> C as well: A -> B -> C -> D -> A is strong
    assert.equal(l.inversions.length, 1);
  });

  test('a trylock adds no dependency to it, but the locks taken under it depend on it', () => {
    const s = new Sched();
    const a = new Mutex(s, 'a', 'A'), b = new Mutex(s, 'b', 'B');
    runUntil(s, s.spawn('t1', (function* (): KGen {
      yield* a.lock();
      assert.ok(yield* b.trylock());
      yield ev('x', 'x');
      yield* b.unlock();
      yield* a.unlock();
    })(), null));
    assert.deepEqual([...s.lockdep.edges.keys()], [], 'a then trylock b: nothing recorded');
    runUntil(s, s.spawn('t2', (function* (): KGen {
      assert.ok(yield* b.trylock());
      yield* a.lock();
      yield* a.unlock();
      yield* b.unlock();
    })(), null));
    assert.deepEqual([...s.lockdep.edges.get('B')!.keys()], ['A']);
    assert.deepEqual(s.lockdep.inversions, []);
  });

  test('a novalidate class (struct device\'s mutex) is ignored both ways', () => {
    const s = new Sched();
    const dev = new Mutex(s, 'gpu0.device_lock', 'device_lock');
    dev.novalidate = true;
    const m = new RwSem(s, 'gpu0.memory_lock', 'memory_lock');
    runUntil(s, s.spawn('t1', (function* (): KGen {
      yield* dev.lock();
      yield* m.down_write();
      yield* m.up_write();
      yield* dev.unlock();
      yield* m.down_write();
      yield* dev.lock();
      yield* dev.unlock();
      yield* m.up_write();
    })(), null));
    assert.equal(s.lockdep.edges.size, 0);
    assert.deepEqual(s.lockdep.inversions, []);
  });
});

describe('what Linux lockdep reports, per kernel', () => {
  const kernels = ['v7.1', 'series-v4', 'series-v4-fixed', 'series-v6', 'series-v8', 'series-v8+annul'];

  test('nvgrace-gpu: its read (memory_lock read across copy_to_user, might_fault) against its own 4 KiB fault under mmap_lock: reported on every kernel, though the copy never faults', () => {
    const scn = loadScenarioFile('scenarios/nvgrace-read-vs-own-fault-lockdep.yaml');
    for (const kernel of kernels) {
      const { result } = runScenario(scn, { kernel });
      assert.deepEqual(result.problems, [], kernel);
      const inv = result.violations.filter((v) => v.invariant === 'no-deadlock');
      assert.deepEqual(inv.map((v) => v.message), ['lock order inversion: main: gh0.memory_lock (r) then mm1.mmap_lock (r); main: mm1.mmap_lock (r) then gh0.memory_lock (r)'], kernel);
    }
  });

  test('the mmap-vs-reset reproducer: with ATS the reset closes the circle through the IOMMU group mutex on every kernel, and the reset completes; without ATS, or without the boot\'s history, nothing', () => {
    const file = 'scenarios/mmap-vs-reset-lockdep.yaml';
    const scn = loadScenarioFile(file);
    for (const kernel of kernels) {
      const { result } = runScenario(scn, { kernel });
      assert.deepEqual(result.problems, [], kernel);
      assert.ok(result.violations.some((v) => v.expected && /nic0\.memory_lock \(w\) then nic0\.iommu_group\.mutex \(w\)$/.test(v.message)), kernel);
    }
    const noAts = { ...scn, devices: scn.devices.map((d) => ({ ...d, capabilities: { ...d.capabilities, ats: false } })) };
    assert.deepEqual(runScenario(noAts, { kernel: 'series-v8' }).result.violations, []);
    const noHistory = { ...scn, lockdepHistory: [] };
    assert.deepEqual(runScenario(noHistory, { kernel: 'series-v8' }).result.violations, []);
    const r = exploreDpor(scn, { kernel: kernelFor(scn), states: true, atomic: true, maxExecutions: 1000 });
    assert.ok(r.complete && !r.counterexample);
  });

  test('lockdep_history is checked by the loader', () => {
    const head = 'name: t\ndevices:\n  - { name: gpu0, profile: h100 }\nthreads:\n  main:\n    - open: { path: /dev/vfio/devices/gpu0 }\n';
    assert.throws(() => parseScenario(`${head}lockdep_history: ['a -> b']\n`, 'bad.yaml'), /bad\.yaml:\d+: lockdep_history\.0: a dependency/);
    assert.deepEqual(parseScenario(`${head}lockdep_history: ['a -(SR)-> b']\n`, 'ok.yaml').lockdepHistory, [{ from: 'a', dep: 'SR', to: 'b' }]);
    assert.throws(() => parseScenario(head.replace('profile: h100', 'profile: h100, capabilities: { pcie: false, flr: false, ats: true }'), 'ats.yaml'), /ats: ATS is a PCIe extended capability/);
  });
});
