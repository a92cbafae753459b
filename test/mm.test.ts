// mm through the API: where mmap puts a BAR mapping, which mmaps are refused, VMA splits, fork,
// MAP_FIXED and user faults. Oracles: Linux 6.12 (Debian's kernel) as observed in QEMU
// (scenarios/conform/mmap-range-checks.yaml, mmap-region-index-checks.yaml, fault-*.yaml),
// vfio_pci_core_mmap() in drivers/vfio/pci/vfio_pci_core.c, mm/memory.c, a VMA split as
// vfio_pci_dma_buf_find_pfn() ([PATCH v4 03/10]) handles it, docs/model-decisions.md.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mappedRace, runSteps } from './bundled.ts';
import { createKernel, SignalError, SyscallError, encode, decode, uapi, mman, type SimKernel, type SimProcess } from '../src/index.ts';
import type { FaultRecord } from '../src/kernel/sched/sched.ts';

const KiB = 1024, MiB = 2 ** 20, GiB = 2 ** 30;
const PAGE = 4 * KiB;
const { PROT_READ, PROT_WRITE, MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_FIXED_NOREPLACE } = mman;
const RW = PROT_READ | PROT_WRITE;
const IDX = (i: number) => i * 2 ** 40;

interface Env {
  sim: SimKernel;
  p: SimProcess;
  fd: number;
}
function env(profile = 'ivshmem', extra: Record<string, unknown> = {}): Env {
  const sim = createKernel({ devices: [{ name: 'dev0', profile, ...extra }] });
  const p = sim.spawn();
  const fd = p.open('/dev/vfio/devices/dev0');
  return { sim, p, fd };
}
function regionInfo(p: SimProcess, fd: number, index: number) {
  const buf = encode(uapi.vfio_region_info, { argsz: uapi.vfio_region_info.size, index });
  p.ioctl(fd, uapi.IOCTLS.VFIO_DEVICE_GET_REGION_INFO, buf);
  const d = decode(uapi.vfio_region_info, buf);
  return { size: Number(d.size as bigint), offset: Number(d.offset as bigint), flags: Number(d.flags) };
}
/** Write a u64 into the BAR through the device fd (pwrite), independently of any mapping. */
function poke(e: Env, bar: number, off: number, value: bigint): void {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, value, true);
  assert.equal(e.p.pwrite(e.fd, b, IDX(bar) + off), 8);
}
function errnoOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof SyscallError) return e.errno;
    throw e;
  }
  return 'no error';
}
function signalOf(f: () => unknown): { signal: string; code: string } | null {
  try {
    f();
  } catch (e) {
    if (e instanceof SignalError) return { signal: e.signal, code: e.code };
    throw e;
  }
  return null;
}
/** The fault-handler calls of the last system call (what vfio_pci_core's dev_dbg line would print). */
function lastFaults(sim: SimKernel): Array<[number, string]> {
  const t = sim.lastTask!;
  return t.faults.map((f: FaultRecord) => [f.order, f.outcome]);
}
const marker = (off: number) => 0x1000_0000_0000_0000n | BigInt(off);

describe('mmap: the VA the kernel picks (observed on 6.12, docs/model-decisions.md)', () => {
  test('length ≥ 2 MiB: VA ≡ file offset (mod 2 MiB) and never 1 GiB-aligned', () => {
    const e = env();
    const bar2 = regionInfo(e.p, e.fd, 2).offset;
    const cases: Array<[number, number]> = [
      [2 * MiB, 0], [4 * MiB, 0], [4 * MiB, PAGE], [4 * MiB, 2 * MiB + 5 * PAGE], [GiB, 0], [2 * GiB, 0], [3 * MiB, 0x1ff000],
    ];
    const got: Array<[number, number]> = [];
    for (const [len, off] of cases) {
      const va = e.p.mmap(0, len, RW, MAP_SHARED, e.fd, bar2 + off);
      got.push([va, len]);
      assert.equal(va % (2 * MiB), off % (2 * MiB), `len 0x${len.toString(16)} off 0x${off.toString(16)}: VA 0x${va.toString(16)}`);
      assert.notEqual(va % GiB, 0, `VA 0x${va.toString(16)} of a 0x${len.toString(16)} mapping must not be 1 GiB-aligned`);
    }
    // the mappings do not overlap each other
    got.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < got.length; i++) assert.ok(got[i - 1][0] + got[i - 1][1] <= got[i][0]);
  });

  test('length < 2 MiB: page-aligned', () => {
    const e = env();
    const bar2 = regionInfo(e.p, e.fd, 2).offset;
    for (const [len, off] of [[MiB, 0], [PAGE, 0], [MiB, 0x3000], [2 * MiB - PAGE, PAGE]]) {
      const va = e.p.mmap(0, len, RW, MAP_SHARED, e.fd, bar2 + off);
      assert.equal(va % PAGE, 0);
      assert.ok(va >= PAGE && va + len <= 2 ** 47);
    }
  });

  test('a free, page-aligned hint is taken as is', () => {
    const e = env();
    const hint = 0x5555_0000_0000 + 7 * PAGE;
    assert.equal(e.p.mmap(hint, 4 * MiB, RW, MAP_SHARED, e.fd, IDX(2)), hint);
  });
});

describe('mmap: argument checks (observed on 6.12, vfio_pci_core_mmap())', () => {
  test('length 0, an unaligned offset and MAP_PRIVATE are EINVAL', () => {
    const e = env();
    assert.equal(errnoOf(() => e.p.mmap(0, 0, RW, MAP_SHARED, e.fd, IDX(2))), 'EINVAL');
    assert.equal(errnoOf(() => e.p.mmap(0, PAGE, RW, MAP_SHARED, e.fd, IDX(2) + 0x10)), 'EINVAL');
    assert.equal(errnoOf(() => e.p.mmap(0, 2 * MiB, RW, MAP_PRIVATE, e.fd, IDX(2))), 'EINVAL');
  });

  test('past the end of the BAR is EINVAL; up to the end is fine', () => {
    const e = env();
    const r = regionInfo(e.p, e.fd, 2);
    assert.equal(r.size, 2 * GiB);
    assert.equal(errnoOf(() => e.p.mmap(0, PAGE, RW, MAP_SHARED, e.fd, r.offset + r.size)), 'EINVAL', 'offset == size');
    assert.equal(errnoOf(() => e.p.mmap(0, 8 * KiB, RW, MAP_SHARED, e.fd, r.offset + r.size - PAGE)), 'EINVAL', '8 KiB straddling the end');
    assert.equal(errnoOf(() => e.p.mmap(0, 4 * GiB, RW, MAP_SHARED, e.fd, r.offset)), 'EINVAL', 'longer than the BAR');
    assert.ok(e.p.mmap(0, PAGE, RW, MAP_SHARED, e.fd, r.offset + r.size - PAGE) > 0, 'the last page');
    assert.ok(e.p.mmap(0, 2 * GiB, RW, MAP_SHARED, e.fd, r.offset) > 0, 'the whole BAR');
  });

  test('ROM, config, VGA, index 9, an absent BAR and the upper half of a 64-bit BAR are EINVAL', () => {
    const e = env();
    for (const [idx, what] of [[6, 'ROM'], [7, 'config'], [8, 'VGA'], [9, 'index 9'], [1, 'BAR1 (absent)'], [3, 'BAR3 (upper half of BAR2)'], [4, 'BAR4'], [5, 'BAR5']] as const)
      assert.equal(errnoOf(() => e.p.mmap(0, PAGE, PROT_READ, MAP_SHARED, e.fd, IDX(idx))), 'EINVAL', what);
  });

  test('ivshmem BAR0 (256 bytes): a 4 KiB mapping is allowed (page-rounded) and loads work; 8 KiB is EINVAL', () => {
    const e = env();
    const r = regionInfo(e.p, e.fd, 0);
    assert.equal(r.size, 0x100);
    const va = e.p.mmap(0, PAGE, RW, MAP_SHARED, e.fd, r.offset);
    poke(e, 0, 0xf8, 0x1122_3344_5566_7788n);
    assert.equal(e.p.load(va + 0xf8, 8), 0x1122_3344_5566_7788n);
    assert.equal(e.p.load(va + 0xfc, 4), 0x1122_3344n);
    assert.equal(errnoOf(() => e.p.mmap(0, 8 * KiB, RW, MAP_SHARED, e.fd, r.offset)), 'EINVAL');
  });

  test('PROT_EXEC is allowed; a write mapping of a read-only fd is EACCES', () => {
    const e = env();
    assert.ok(e.p.mmap(0, PAGE, PROT_READ | mman.PROT_EXEC, MAP_SHARED, e.fd, IDX(2)) > 0);
    const ro = e.p.open('/dev/vfio/devices/dev0', mman.O_RDONLY);
    assert.equal(errnoOf(() => e.p.mmap(0, PAGE, RW, MAP_SHARED, ro, IDX(2))), 'EACCES');
  });
});

describe('fault dispatch: PUD → PMD → PTE with per-VMA-lock retry (observed on 6.12, fault lines order/pgoff/outcome)', () => {
  const faults = (sim: SimKernel) => sim.lastTask!.faults.map((f) => [f.order, f.pgoff, f.outcome]);

  test('2 GiB of BAR2 at a 1 GiB-aligned VA: PUD entries, at the order-aligned address', () => {
    const e = env();
    const va = e.p.mmap(0x7f00_0000_0000, 2 * GiB, RW, MAP_SHARED | MAP_FIXED_NOREPLACE, e.fd, IDX(2));
    assert.equal(va, 0x7f00_0000_0000);
    e.p.store(va + GiB + PAGE, 8, 0x1111_2222_3333_4444n);
    assert.deepEqual(faults(e.sim), [[18, 0x40000, 'NOPAGE']]);
    e.p.store(va, 8, 0x5555n);
    assert.deepEqual(faults(e.sim), [[18, 0, 'NOPAGE']]);
    assert.equal(e.p.load(va + GiB + PAGE, 8), 0x1111_2222_3333_4444n);
    assert.deepEqual(faults(e.sim), [], 'present: no fault');
    assert.equal(e.p.proc.mm.pt.lookup(va + GiB + PAGE)!.va, va + GiB);
    assert.deepEqual(e.sim.violations, []);
  });

  test('BAR2 offset 2 MiB, 4 MiB at a 2 MiB-aligned VA: PUD falls back (VMA too small), PMD installs', () => {
    const e = env();
    for (const o of [0x200000, 0x401000]) poke(e, 2, o, BigInt(o));
    const va = e.p.mmap(0x7e00_0040_0000, 4 * MiB, RW, MAP_SHARED | MAP_FIXED, e.fd, IDX(2) + 2 * MiB);
    assert.equal(e.p.load(va, 8), 0x200000n);
    const f = faults(e.sim);
    assert.deepEqual(f.map((x) => [x[0], x[2]]), [[18, 'FALLBACK'], [9, 'NOPAGE']]);
    assert.deepEqual(f[1], [9, 0, 'NOPAGE']);
    assert.equal(e.p.load(va + 2 * MiB + PAGE, 8), 0x401000n);
    assert.deepEqual(faults(e.sim), [[9, 0x200, 'NOPAGE']]);
  });

  test('BAR2 offset 4 KiB, 4 MiB at a 2 MiB-aligned VA: the pfn is not 2 MiB-aligned, so PTEs (9 falls back twice: VMA lock, then mmap_lock)', () => {
    const e = env();
    for (const o of [0x1000, 0x202000]) poke(e, 2, o, BigInt(o));
    const va = e.p.mmap(0x7e00_0020_0000, 4 * MiB, RW, MAP_SHARED | MAP_FIXED, e.fd, IDX(2) + PAGE);
    assert.equal(e.p.load(va, 8), 0x1000n);
    const f = faults(e.sim);
    assert.deepEqual(f.map((x) => [x[0], x[2]]), [[18, 'FALLBACK'], [9, 'FALLBACK'], [9, 'FALLBACK'], [0, 'NOPAGE']]);
    assert.deepEqual(f[3], [0, 0, 'NOPAGE']);
    assert.equal(e.p.load(va + 2 * MiB + PAGE, 8), 0x202000n);
    assert.deepEqual(faults(e.sim), [[9, 0x200, 'FALLBACK'], [9, 0x200, 'FALLBACK'], [0, 0x201, 'NOPAGE']]);
    assert.deepEqual(e.sim.violations, []);
  });

  test('after 4 KiB faults a 2 MiB span keeps its PTE table: no PMD fault there any more (mm/memory.c, __handle_mm_fault())', () => {
    const e = env();
    const va = e.p.mmap(0x7e00_0020_0000, 4 * MiB, RW, MAP_SHARED | MAP_FIXED, e.fd, IDX(2) + PAGE);
    e.p.load(va, 8);
    e.p.load(va + PAGE, 8);
    assert.deepEqual(faults(e.sim).map((x) => x[0]), [0], 'the PMD slot holds a PTE table, so only order 0 is tried');
  });
});

describe('munmap and VMA splits', () => {
  test('munmap of 4 KiB in the middle of a PMD-mapped VMA: both pieces still read the right device bytes (observed 6.12)', () => {
    // observed: BAR2 offset 4M, length 4M, PMD-mapped; munmap 4K at +1M; +0 OK, +1M+4K OK, hole SIGSEGV
    const e = env();
    const base = 4 * MiB;
    const offs = [0, 8, MiB - 8, MiB + PAGE, MiB + PAGE + 0x10, 2 * MiB, 3 * MiB + 0x123 * 8, 4 * MiB - 8];
    for (const o of offs) poke(e, 2, base + o, marker(base + o));
    poke(e, 2, base + MiB, marker(base + MiB));
    const va = e.p.mmap(0, 4 * MiB, RW, MAP_SHARED, e.fd, IDX(2) + base);
    assert.equal(e.p.load(va, 8), marker(base));
    assert.deepEqual(lastFaults(e.sim), [[18, 'FALLBACK'], [9, 'NOPAGE']], 'a fresh 4 MiB mapping: PUD falls back, PMD installs');
    assert.equal(e.p.load(va + MiB, 8), marker(base + MiB), 'the page about to be unmapped, through the PMD');

    e.p.munmap(va + MiB, PAGE);
    const vmas = e.p.proc.mm.vmas.map((v) => [v.vm_start - va, v.vm_end - va]);
    assert.deepEqual(vmas, [[0, MiB], [MiB + PAGE, 4 * MiB]]);
    assert.equal(e.p.proc.mm.pt.lookup(va), null, 'the whole PMD was zapped, not split into PTEs');

    assert.equal(e.p.load(va, 8), marker(base));
    assert.deepEqual(lastFaults(e.sim), [[9, 'FALLBACK'], [9, 'FALLBACK'], [0, 'NOPAGE']], 'the 1 MiB first piece is too small for a PMD (observed: 9 → FALLBACK twice, then 0)');
    assert.equal(e.p.proc.mm.pt.lookup(va)!.order, 0);
    assert.equal(e.p.load(va + MiB + PAGE, 8), marker(base + MiB + PAGE));
    const t = e.sim.lastTask!;
    const inst = t.faults.filter((f) => f.outcome === 'NOPAGE');
    assert.deepEqual(inst.map((f) => [f.order, f.pgoff]), [[0, 0]], 'second piece: order 0 at pgoff 0 relative to the new VMA');
    for (const o of offs) assert.equal(e.p.load(va + o, 8), marker(base + o), `+0x${o.toString(16)}`);
    assert.equal(e.p.proc.mm.pt.lookup(va + 2 * MiB)!.order, 9, 'the untouched second 2 MiB of the right piece still maps huge');
    assert.deepEqual(signalOf(() => e.p.load(va + MiB, 8)), { signal: 'SIGSEGV', code: 'SEGV_MAPERR' }, 'the hole');
    assert.deepEqual(e.sim.violations, []);
  });

  test('munmap of the first page (a VMA split, as find_pfn of v4 03/10 handles it): the survivor maps the same physical pages', () => {
    const e = env();
    const base = 2 * MiB;
    for (const o of [0, PAGE, 5 * PAGE, 2 * MiB + 8]) poke(e, 2, base + o, marker(base + o));
    const va = e.p.mmap(0, 4 * MiB, RW, MAP_SHARED, e.fd, IDX(2) + base);
    assert.equal(e.p.load(va + PAGE, 8), marker(base + PAGE));
    e.p.munmap(va, PAGE);
    const [v] = e.p.proc.mm.vmas;
    assert.equal(v.vm_start, va + PAGE);
    assert.equal(v.vm_pgoff, (IDX(2) + base) / PAGE + 1, 'vm_pgoff advanced with vm_start');
    for (const o of [PAGE, 5 * PAGE, 2 * MiB + 8]) assert.equal(e.p.load(va + o, 8), marker(base + o));
    assert.deepEqual(signalOf(() => e.p.load(va, 8)), { signal: 'SIGSEGV', code: 'SEGV_MAPERR' });
    assert.deepEqual(e.sim.violations, []);
  });

  test('munmap of a whole mapping removes the VMA, its entries and its tables', () => {
    const e = env();
    const va = e.p.mmap(0, 2 * MiB, RW, MAP_SHARED, e.fd, IDX(2));
    e.p.load(va, 4);
    e.p.munmap(va, 2 * MiB);
    assert.equal(e.p.proc.mm.vmas.length, 0);
    assert.deepEqual([...e.p.proc.mm.pt.entries()], []);
    assert.ok(e.p.proc.mm.pt.pudNone(va));
    assert.deepEqual(signalOf(() => e.p.load(va, 4)), { signal: 'SIGSEGV', code: 'SEGV_MAPERR' });
  });

  test('munmap argument checks: unaligned address and length 0 are EINVAL', () => {
    const e = env();
    const va = e.p.mmap(0, 2 * MiB, RW, MAP_SHARED, e.fd, IDX(2));
    assert.equal(errnoOf(() => e.p.munmap(va + 1, PAGE)), 'EINVAL');
    assert.equal(errnoOf(() => e.p.munmap(va, 0)), 'EINVAL');
  });
});

describe('fork', () => {
  test('the child gets the PFN-map entries: it loads without faulting (observed 6.12)', () => {
    const e = env();
    const va = e.p.mmap(0, 4 * MiB, RW, MAP_SHARED, e.fd, IDX(2) + 2 * MiB);
    e.p.store(va + 0x40, 8, 0x0123_4567_89ab_cdefn);
    const parentEntry = e.p.proc.mm.pt.lookup(va)!;
    assert.equal(parentEntry.order, 9);
    const child = e.p.fork();
    const ce = child.proc.mm.pt.lookup(va);
    assert.ok(ce, 'the entry is copied at fork');
    assert.equal(ce.order, 9);
    assert.equal(ce.pfn, parentEntry.pfn);
    assert.deepEqual(child.proc.mm.vmas.map((v) => [v.vm_start, v.vm_end, v.vm_pgoff]), e.p.proc.mm.vmas.map((v) => [v.vm_start, v.vm_end, v.vm_pgoff]));
    assert.equal(child.load(va + 0x40, 8), 0x0123_4567_89ab_cdefn);
    assert.deepEqual(lastFaults(e.sim), [], 'the child did not fault');
    // the child's store is visible to the parent: both map the same device memory
    child.store(va + 0x48, 4, 0xfeedface);
    assert.equal(e.p.load(va + 0x48, 4), 0xfeedfacen);
    // and the copies are independent VMAs: the parent unmapping leaves the child's mapping working
    e.p.munmap(va, 4 * MiB);
    assert.equal(child.load(va + 0x40, 8), 0x0123_4567_89ab_cdefn);
    assert.deepEqual(e.sim.violations, []);
  });
});

describe('MAP_FIXED', () => {
  test('MAP_FIXED replaces the part of an existing mapping it covers, including its installed entries', () => {
    const e = env();
    poke(e, 2, 0, marker(0));
    poke(e, 2, 2 * MiB, marker(2 * MiB));
    poke(e, 2, 64 * MiB, marker(64 * MiB));
    const a = e.p.mmap(0, 4 * MiB, RW, MAP_SHARED, e.fd, IDX(2));
    assert.equal(e.p.load(a + 2 * MiB, 8), marker(2 * MiB), 'installs a PMD at a+2M');
    assert.equal(e.p.mmap(a + 2 * MiB, 2 * MiB, RW, MAP_SHARED | MAP_FIXED, e.fd, IDX(2) + 64 * MiB), a + 2 * MiB);
    assert.equal(e.p.load(a + 2 * MiB, 8), marker(64 * MiB), 'the new mapping, not a stale entry of the old one');
    assert.equal(e.p.load(a, 8), marker(0), 'the rest of the old mapping is intact');
    assert.deepEqual(e.p.proc.mm.vmas.map((v) => [v.vm_start - a, v.vm_end - a]), [[0, 2 * MiB], [2 * MiB, 4 * MiB]]);
    assert.deepEqual(e.sim.violations, []);
  });

  test('MAP_FIXED at an unaligned address is EINVAL; MAP_FIXED_NOREPLACE over a mapping is EEXIST', () => {
    const e = env();
    const a = e.p.mmap(0, 4 * MiB, RW, MAP_SHARED, e.fd, IDX(2));
    assert.equal(errnoOf(() => e.p.mmap(a + 1, PAGE, RW, MAP_SHARED | MAP_FIXED, e.fd, IDX(2))), 'EINVAL');
    assert.equal(errnoOf(() => e.p.mmap(a + PAGE, PAGE, RW, MAP_SHARED | MAP_FIXED_NOREPLACE, e.fd, IDX(2))), 'EEXIST');
  });
});

describe('SIGSEGV', () => {
  test('a load or store at an address with no VMA is SIGSEGV (SEGV_MAPERR)', () => {
    const e = env();
    e.p.mmap(0, 2 * MiB, RW, MAP_SHARED, e.fd, IDX(2));
    assert.deepEqual(signalOf(() => e.p.load(0x10000, 4)), { signal: 'SIGSEGV', code: 'SEGV_MAPERR' });
    assert.deepEqual(signalOf(() => e.p.store(0x3000_0000_0000, 4, 1)), { signal: 'SIGSEGV', code: 'SEGV_MAPERR' });
  });

  test('a store to a read-only mapping is SIGSEGV (SEGV_ACCERR) and never reaches the vfio fault handler', () => {
    const e = env();
    poke(e, 2, 0x100, 0x77n);
    const va = e.p.mmap(0, 2 * MiB, PROT_READ, MAP_SHARED, e.fd, IDX(2));
    // before any entry exists
    assert.deepEqual(signalOf(() => e.p.store(va + 0x100, 4, 5)), { signal: 'SIGSEGV', code: 'SEGV_ACCERR' });
    assert.deepEqual(lastFaults(e.sim), []);
    // with a read-only entry present (observed: mprotect(PROT_READ) then store -> ACCERR, no vfio fault)
    assert.equal(e.p.load(va + 0x100, 4), 0x77n);
    assert.equal(e.p.proc.mm.pt.lookup(va)!.write, false);
    assert.deepEqual(signalOf(() => e.p.store(va + 0x100, 4, 5)), { signal: 'SIGSEGV', code: 'SEGV_ACCERR' });
    assert.deepEqual(lastFaults(e.sim), []);
    assert.equal(e.p.load(va + 0x100, 4), 0x77n, 'the device memory is unchanged');
  });
});

describe('negative numbers in unsigned long arguments read as C passes them (two\'s complement)', () => {
  test('mmap length -1 is ENOMEM, munmap length -1 EINVAL, mprotect length -4096 ENOMEM, offset -4096 an unknown region (EINVAL)', async () => {
    const result = await runSteps(`    - open: { path: /dev/vfio/devices/gpu0, as: dev }
    - mmap: { fd: dev, offset: 0, length: -1, expect: { errno: ENOMEM } }
    - mmap: { fd: dev, offset: -4096, length: 4KiB, expect: { errno: EINVAL } }
    - mmap: { fd: dev, offset: 0, length: 64KiB, as: m }
    - munmap: { addr: m, length: -1, expect: { errno: EINVAL } }
    - mprotect: { addr: m, offset: 4096, length: -4096, prot: [read], expect: { errno: ENOMEM } }
    - munmap: { addr: m, length: 64KiB, expect: { ok: true } }
`);
    assert.deepEqual(result.problems, []);
    assert.equal(result.exit, 0);
  });
});

test('munmap of a page inside a mapping: the MMU notifier and the unmap announce that page, after the VMA splits', async () => {
  const { ScenarioRun } = await import('../src/scenario/runner.ts');
  const { MmuNotifier, mmu_notifier_register } = await import('../src/kernel/mm/mmu_notifier.ts');
  const scn = await mappedRace('16KiB', [], ['t: [{ munmap: { addr: m, offset: 4096, length: 4KiB } }]']);
  const run = new ScenarioRun(scn);
  const mm = run.k.procs[0].mm;
  const base = Number(run.bindings.get('m')!.value);
  const ranges: Array<[number, number]> = [];
  mmu_notifier_register(new MmuNotifier({ name: 'test', *invalidate_range_start(_, r) { ranges.push([r.start - base, r.end - base]); } }, null), mm);
  const t = run.tasks[0];
  let unmap: Array<[number, number]> = [];
  while (!t.done) {
    if (t.pending.op === 'unmap_region') unmap = t.pending.spans!.filter((s) => s.space === mm.ptKey).map((s) => [s.lo - base, s.hi - base]);
    run.step(t);
  }
  assert.deepEqual(ranges, [[PAGE, 2 * PAGE]], 'secondary MMUs are told of the page that goes');
  assert.deepEqual(unmap, [[PAGE, 2 * PAGE]], 'the unmap step names the page-table span it clears');
  assert.deepEqual(mm.vmas.map((v) => [v.vm_start - base, v.vm_end - base]), [[0, PAGE], [2 * PAGE, 4 * PAGE]]);
});
