// vfio_pci_dma_buf_find_pfn ([PATCH v4 03/10] vfio/pci: Add a helper to look up PFNs for DMABUFs,
// 2026-07-01) on worked examples (A: a PMD-aligned BAR offset, B: a misaligned one, C: a multi-range
// straddle, D: a VMA split), its returns as vfio_pci_mmap_huge_fault() turns them into VM_FAULT_*
// codes, plus a property test against an independent reference.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createKernel } from '../src/index.ts';
import type { Kernel } from '../src/kernel/kernel.ts';
import { findPfn, VfioPciDmaBuf, type PhysVec } from '../src/kernel/vfio/pci/dmabuf.ts';
import type { Vma } from '../src/kernel/mm/vma.ts';
import { E } from '../src/uapi/errno.ts';

const KiB = 1024, MiB = 2 ** 20, GiB = 2 ** 30;
const PAGE = 4 * KiB;
/** pages per region index in vm_pgoff: VFIO_PCI_OFFSET_SHIFT (40) - PAGE_SHIFT (12) */
const INDEX_PAGES = 2 ** 28;
const EAGAIN = -E.EAGAIN, EFAULT = -E.EFAULT;

// v4's find_pfn (-EAGAIN to fall back, the masked adjust); series-v6 on is checked where it differs
function kernel(mutant?: string): Kernel {
  return createKernel({ devices: [{ name: 'gpu0', profile: 'h100' }], mutant, kernel: 'series-v4' }).k;
}

interface Setup {
  k: Kernel;
  priv: VfioPciDmaBuf;
  vma: Vma;
}
/** A buffer with `ranges`, `adjust` (pages) and a VMA [start, start+len) with vm_pgoff `pgoff`. */
function setup(k: Kernel, ranges: PhysVec[], adjust: number, start: number, len: number, pgoff: number, kind: 'bar-mmap' | 'exported' = 'exported'): Setup {
  const vdev = k.vfio.get('gpu0')!;
  const size = ranges.reduce((a, r) => a + r.len, 0);
  const priv = new VfioPciDmaBuf(k, vdev, size, ranges, adjust, 2, kind);
  const mm = k.newProcess(`p${k.procs.length + 1}`).mm;
  const vma = mm.newVma(start, start + len, pgoff, null, { read: true, write: true, exec: false, shared: true, mayWrite: true, pfnmap: true });
  return { k, priv, vma };
}
const find = (s: Setup, addr: number, order: number) => findPfn(s.k, s.priv, s.vma, addr, order);
const ok = (pfn: number) => ({ ret: 0, pfn });

// A 2 MiB-aligned VA that is not 1 GiB-aligned (as the observed kernel picks them).
const VA = 0x7f5a_3c40_0000;

describe('find_pfn worked examples', () => {
  // Example A: BAR 2 at physical 0xE000_0000, 4 MiB mmapped at BAR offset 2 MiB to a 2 MiB-aligned VA.
  // adjust = 0x200 pages, vma_off = 0, one range {0xE020_0000, 4 MiB}.
  const exampleA = (k = kernel()) => setup(k, [{ paddr: 0xe020_0000, len: 4 * MiB }], 0x200, VA, 4 * MiB, 2 * INDEX_PAGES + 0x200, 'bar-mmap');

  test('Example A: a PMD fault anywhere in the first 2 MiB gives pfn 0xE0200 (PMD mapping)', () => {
    const s = exampleA();
    for (const off of [0, PAGE, 0x12345, 2 * MiB - 1]) assert.deepEqual(find(s, VA + off, 9), ok(0xe0200), `PMD fault at +0x${off.toString(16)}`);
    assert.deepEqual(find(s, VA + 2 * MiB + 0x800, 9), ok(0xe0400), 'the second 2 MiB maps 512 pages further');
    assert.deepEqual(find(s, VA, 18), { ret: EAGAIN, pfn: 0 }, 'a 4 MiB VMA cannot take a 1 GiB page');
    assert.deepEqual(find(s, VA + 5 * PAGE + 7, 0), ok(0xe0205));
  });

  // Example B: same but at BAR offset 4 KiB: pfn 0xE0001 is not 512-aligned.
  test('Example B: BAR offset 4 KiB makes the PMD pfn misaligned: -EAGAIN, and PTEs map 0xE0001…', () => {
    const s = setup(kernel(), [{ paddr: 0xe000_1000, len: 4 * MiB }], 1, VA, 4 * MiB, 2 * INDEX_PAGES + 1, 'bar-mmap');
    assert.deepEqual(find(s, VA, 9), { ret: EAGAIN, pfn: 0 });
    assert.deepEqual(find(s, VA + 2 * MiB + PAGE, 9), { ret: EAGAIN, pfn: 0 });
    assert.deepEqual(find(s, VA, 0), ok(0xe0001));
    assert.deepEqual(find(s, VA + 2 * MiB + PAGE, 0), ok(0xe0001 + 0x201));
    assert.deepEqual(find(s, VA + 4 * MiB - 1, 0), ok(0xe0001 + 0x3ff));
  });

  // Example C: ranges {12 KiB}, {2 MiB}, DMABUF mmapped at a 2 MiB-aligned VA with pgoff 0.
  test('Example C: a PMD that straddles two ranges falls back; VA+12 KiB is range 1 offset 0', () => {
    // both ranges deliberately 2 MiB-aligned physically, so only the straddle rule can refuse the PMD
    const r0 = { paddr: 0x1_0000_0000, len: 12 * KiB }, r1 = { paddr: 0x2_0000_0000, len: 2 * MiB };
    const s = setup(kernel(), [r0, r1], 0, VA, 2 * MiB + 12 * KiB, 0);
    assert.deepEqual(find(s, VA, 9), { ret: EAGAIN, pfn: 0 }, 'span [0, 2 MiB) is inside neither range');
    assert.deepEqual(find(s, VA + 12 * KiB, 0), ok(r1.paddr / PAGE), 'range 1 offset 0');
    assert.deepEqual(find(s, VA + 8 * KiB, 0), ok(r0.paddr / PAGE + 2), 'the last page of range 0');
    assert.deepEqual(find(s, VA + 2 * MiB + 8 * KiB, 0), ok(r1.paddr / PAGE + 511), 'the last page of the buffer');
    assert.deepEqual(find(s, VA + 2 * MiB, 9), { ret: EAGAIN, pfn: 0 }, 'the second 2 MiB block leaves the VMA');
  });

  // Example D: munmap the first page of a BAR mmap; the survivor's vm_start and vm_pgoff both advance.
  test('Example D: after a split the surviving VMA still maps every VA to the same physical page', () => {
    const k = kernel();
    const before = exampleA(k);
    const after = setup(k, before.priv.phys_vec, before.priv.vma_pgoff_adjust, VA + PAGE, 4 * MiB - PAGE, 2 * INDEX_PAGES + 0x200 + 1, 'bar-mmap');
    after.priv = before.priv; // the same buffer: split VMAs share vm_private_data
    assert.deepEqual(find(after, VA + PAGE, 0), ok(0xe0201), 'fault_offset 4 KiB at the new start');
    for (const off of [PAGE, 3 * PAGE, 2 * MiB, 4 * MiB - PAGE]) assert.deepEqual(find(after, VA + off, 0), find(before, VA + off, 0), `same page at +0x${off.toString(16)}`);
    assert.deepEqual(find(after, VA + 2 * MiB, 9), ok(0xe0400), 'the untouched second 2 MiB can still be a PMD');
    assert.deepEqual(find(after, VA, 9), { ret: EAGAIN, pfn: 0 }, 'the first 2 MiB block now starts before the VMA');
    assert.deepEqual(find(after, VA, 0), { ret: EFAULT, pfn: 0 }, 'the unmapped first page is outside the VMA');
  });
});

describe('find_pfn definitions and returns', () => {
  test('vma_off strips the region index with the 40-bit mask and subtracts only the in-BAR adjust', () => {
    // BAR5 mapping at in-BAR page 7, split so that the VMA starts 3 pages later: buffer offset 3 pages
    const s = setup(kernel(), [{ paddr: 0x40_0000_0000, len: 64 * PAGE }], 7, VA, 16 * PAGE, 5 * INDEX_PAGES + 7 + 3, 'bar-mmap');
    assert.deepEqual(find(s, VA, 0), ok(0x40_0000_0000 / PAGE + 3));
    // an exported buffer (adjust 0) mmapped at pgoff 5: byte 0 of the VMA is buffer byte 5 pages
    const e = setup(kernel(), [{ paddr: 0x40_0000_0000, len: 64 * PAGE }], 0, VA, 16 * PAGE, 5);
    assert.deepEqual(find(e, VA + PAGE, 0), ok(0x40_0000_0000 / PAGE + 6));
  });

  test('the return table, case by case', () => {
    const paddr = 0x1_0000_0000;
    // VMA [VA+4K, VA+4K+4M), buffer 8 MiB one range, exported, pgoff 0
    const s = setup(kernel(), [{ paddr, len: 8 * MiB }], 0, VA + PAGE, 4 * MiB, 0);
    // order > 0 block starting before vm_start -> -EAGAIN
    assert.equal(find(s, VA + PAGE, 9).ret, EAGAIN);
    // order > 0 block inside the VMA, but pfn (paddr + 2M - 4K) misaligned -> -EAGAIN
    assert.equal(find(s, VA + 2 * MiB, 9).ret, EAGAIN);
    // order 0 before vm_start / at vm_end -> -EFAULT
    assert.equal(find(s, VA, 0).ret, EFAULT);
    assert.equal(find(s, VA + PAGE + 4 * MiB, 0).ret, EFAULT);
    assert.deepEqual(find(s, VA + PAGE + 4 * MiB - 1, 0), ok(paddr / PAGE + 1023));

    // not in any range: a VMA that reaches past the end of the buffer (cannot be built through mmap)
    const t = setup(kernel(), [{ paddr, len: 2 * MiB }], 0, VA, 8 * MiB, 0);
    assert.deepEqual(find(t, VA, 9), ok(paddr / PAGE));
    assert.equal(find(t, VA + 2 * MiB, 9).ret, EAGAIN, 'order > 0 in no range -> -EAGAIN');
    assert.equal(find(t, VA + 2 * MiB, 0).ret, EFAULT, 'order 0 in no range -> -EFAULT');
    assert.equal(find(t, VA + 7 * MiB, 0).ret, EFAULT);
  });

  test('PUD order: succeeds only with a 1 GiB-aligned VA block inside the VMA and one range, with a 1 GiB-aligned pfn', () => {
    const paddr = 0x40_0000_0000; // 1 GiB-aligned
    const va = 0x7f40_0000_0000; // 1 GiB-aligned
    const s = setup(kernel(), [{ paddr, len: 2 * GiB }], 0, va, 2 * GiB, 0);
    assert.deepEqual(find(s, va + GiB + PAGE, 18), ok(paddr / PAGE + GiB / PAGE));
    const m = setup(kernel(), [{ paddr: paddr + 2 * MiB, len: 2 * GiB }], 0, va, 2 * GiB, 0);
    assert.equal(find(m, va, 18).ret, EAGAIN, 'pfn 2 MiB-aligned only');
    assert.deepEqual(find(m, va, 9), ok((paddr + 2 * MiB) / PAGE), 'but a PMD works');
    const two = setup(kernel(), [{ paddr, len: GiB - 2 * MiB }, { paddr: paddr + GiB - 2 * MiB, len: GiB + 2 * MiB }], 0, va, 2 * GiB, 0);
    assert.equal(find(two, va, 18).ret, EAGAIN, 'physically contiguous neighbouring ranges are not merged');
  });

  test('aliasing ranges (the same physical span twice) map independently', () => {
    const r = { paddr: 0x3_0000_0000, len: 2 * MiB };
    const s = setup(kernel(), [r, { ...r }], 0, VA, 4 * MiB, 0);
    assert.deepEqual(find(s, VA, 9), ok(r.paddr / PAGE));
    assert.deepEqual(find(s, VA + 2 * MiB, 9), ok(r.paddr / PAGE));
    assert.deepEqual(find(s, VA + 2 * MiB + 5 * PAGE, 0), ok(r.paddr / PAGE + 5));
  });
});

// ---- property: findPfn agrees with an independent reference ----

interface Case {
  /** ranges: pfn and length in pages */
  ranges: Array<{ pfn: number; pages: number }>;
  kind: 'bar-mmap' | 'exported';
  barIndex: number;
  /** for a BAR mmap, the in-BAR page offset the mmap was made at (the adjust) */
  barPage: number;
  /** buffer page at which the VMA starts (after splits / the mmap offset of an exported buffer) */
  vmaBufPage: number;
  vmaPages: number;
  /** VA of the VMA start, in pages */
  startPage: number;
  /** fault address, in bytes from the VMA start (may be outside) */
  faultOff: number;
  order: 0 | 9 | 18;
}

/**
 * The reference: what find_pfn must compute, written from the buffer's point of view and without the
 * pgoff arithmetic: the VA ↔ buffer offset relation is linear from the VMA start, the buffer ↔ physical
 * relation is piecewise over back-to-back ranges; a huge page needs its VA block inside the VMA, its
 * buffer span inside one range and an aligned pfn.
 */
function reference(c: Case): { ret: number; pfn: number } {
  const size = PAGE * 2 ** c.order;
  const vmStart = c.startPage * PAGE, vmEnd = vmStart + c.vmaPages * PAGE;
  const addr = vmStart + c.faultOff;
  const block = Math.floor(addr / size) * size;
  const miss = { ret: c.order ? EAGAIN : EFAULT, pfn: 0 };
  if (block < vmStart || block + size > vmEnd) return miss;
  const off = c.vmaBufPage * PAGE + (block - vmStart);
  const locate = (o: number) => {
    let s = 0;
    for (let i = 0; i < c.ranges.length; i++) {
      const len = c.ranges[i].pages * PAGE;
      if (o >= s && o < s + len) return { i, pa: c.ranges[i].pfn * PAGE + (o - s) };
      s += len;
    }
    return null;
  };
  const first = locate(off), last = locate(off + size - 1);
  if (!first || !last || first.i !== last.i) return miss;
  const pfn = first.pa / PAGE;
  if (pfn % 2 ** c.order !== 0) return { ret: EAGAIN, pfn: 0 };
  return { ret: 0, pfn };
}

function run(k: Kernel, c: Case): { ret: number; pfn: number } {
  const ranges = c.ranges.map((r) => ({ paddr: r.pfn * PAGE, len: r.pages * PAGE }));
  const adjust = c.kind === 'bar-mmap' ? c.barPage : 0;
  const pgoff = c.kind === 'bar-mmap' ? c.barIndex * INDEX_PAGES + c.barPage + c.vmaBufPage : c.vmaBufPage;
  const s = setup(k, ranges, adjust, c.startPage * PAGE, c.vmaPages * PAGE, pgoff, c.kind);
  return find(s, c.startPage * PAGE + c.faultOff, c.order);
}

const align = fc.constantFrom(1, 512, 2 ** 18);
/** lengths that make huge pages possible often, and odd ones too */
const pages = fc.oneof(fc.integer({ min: 1, max: 1100 }), fc.constantFrom(512, 1024, 1536, 2 ** 18, 2 ** 18 + 512), fc.integer({ min: 1, max: 4 }).map((n) => n * 512 + 3));
const caseArb: fc.Arbitrary<Case> = fc
  .record({
    ranges: fc.array(fc.record({ pfn: fc.tuple(fc.integer({ min: 0, max: 2 ** 14 }), align, fc.integer({ min: 0, max: 3 })).map(([n, a, d]) => n * a + (d === 0 ? 0 : d * 7)), pages }), { minLength: 1, maxLength: 4 }),
    kind: fc.constantFrom('bar-mmap' as const, 'exported' as const),
    barIndex: fc.integer({ min: 0, max: 5 }),
    barPage: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 ** 20 }), fc.integer({ min: 0, max: 8 }).map((n) => n * 512)),
    startAlign: align,
    startN: fc.integer({ min: 1, max: 2 ** 20 }),
    startSkew: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 600 })),
    vmaFrac: fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true })),
    overhang: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 1, max: 1024 })),
    faultFrac: fc.double({ min: -0.05, max: 1.05, noNaN: true }),
    faultByte: fc.integer({ min: 0, max: PAGE - 1 }),
    order: fc.constantFrom(0 as const, 9 as const, 18 as const),
  })
  .map((r) => {
    const total = r.ranges.reduce((a, x) => a + x.pages, 0);
    const vmaBufPage = Math.min(total - 1, Math.floor(r.vmaFrac[0] * total));
    const vmaPages = Math.max(1, Math.ceil(r.vmaFrac[1] * (total - vmaBufPage))) + r.overhang;
    const startPage = r.startN * r.startAlign + r.startSkew;
    const faultPage = Math.floor(r.faultFrac * vmaPages);
    return {
      ranges: r.ranges, kind: r.kind, barIndex: r.barIndex, barPage: r.barPage, vmaBufPage, vmaPages, startPage,
      faultOff: faultPage * PAGE + r.faultByte, order: r.order,
    } satisfies Case;
  })
  .filter((c) => c.startPage * PAGE + c.vmaPages * PAGE < 2 ** 47 && c.startPage * PAGE + c.faultOff >= 0);

/** Cases built around 1 GiB pages (rare in the general generator): aligned, or off by a little. */
const GP = 2 ** 18; // pages in 1 GiB
const near = fc.oneof(fc.constant(0), fc.constant(0), fc.constantFrom(1, 512, GP - 512));
const pudArb: fc.Arbitrary<Case> = fc
  .record({
    ranges: fc.array(fc.record({ pfn: fc.tuple(fc.integer({ min: 1, max: 4096 }), near).map(([n, d]) => n * GP + d), pages: fc.tuple(fc.integer({ min: 1, max: 3 }), near).map(([n, d]) => n * GP + d) }), { minLength: 1, maxLength: 3 }),
    kind: fc.constantFrom('bar-mmap' as const, 'exported' as const),
    barIndex: fc.integer({ min: 0, max: 5 }),
    barPage: fc.tuple(fc.integer({ min: 0, max: 64 }), near).map(([n, d]) => n * GP + d),
    vmaBufPage: fc.tuple(fc.integer({ min: 0, max: 2 }), near).map(([n, d]) => n * GP + d),
    vmaPages: fc.tuple(fc.integer({ min: 1, max: 3 }), near).map(([n, d]) => n * GP + d),
    startPage: fc.tuple(fc.integer({ min: 1, max: 2 ** 14 }), near).map(([n, d]) => n * GP + d),
    faultOff: fc.integer({ min: 0, max: 3 * GiB }),
    order: fc.constantFrom(0 as const, 9 as const, 18 as const, 18 as const),
  })
  .filter((c) => c.startPage * PAGE + c.vmaPages * PAGE < 2 ** 47);
const anyCase = fc.oneof({ arbitrary: caseArb, weight: 4 }, { arbitrary: pudArb, weight: 1 });

describe('property: findPfn equals an independent reference', () => {
  test('random multi-range buffers, VMAs (BAR mmaps with region index and split offsets, exported mmaps) and orders', () => {
    const k = kernel();
    fc.assert(fc.property(anyCase, (c) => {
      assert.deepEqual(run(k, c), reference(c));
    }), { numRuns: 3000 });
  });

  test('the generator reaches every outcome (success at each order, fallback, SIGBUS)', () => {
    const seen = new Set<string>();
    const k = kernel();
    fc.assert(fc.property(anyCase, (c) => {
      const r = run(k, c);
      seen.add(`${c.order}:${r.ret}`);
    }), { numRuns: 3000, seed: 42 });
    for (const want of ['0:0', '9:0', '18:0', `9:${EAGAIN}`, `18:${EAGAIN}`, `0:${EFAULT}`]) assert.ok(seen.has(want), `outcome ${want} never generated (saw ${[...seen].join(', ')})`);
  });

  // The same property must reject the design variants src/explore/mutants.ts lists for find_pfn:
  // otherwise it checks nothing.
  for (const [mutant, what] of [
    ['M9', 'no VMA-bounds check for order > 0'],
    ['M10', 'no pfn alignment check'],
    ['M11', 'a huge page may straddle two ranges'],
    ['M12', 'no vma_pgoff_adjust'],
    ['M13', 'refuse a split VMA (vm_pgoff != adjust)'],
  ] as const) {
    test(`the property detects mutant ${mutant} (${what})`, () => {
      const k = kernel(mutant);
      const r = fc.check(fc.property(anyCase, (c) => {
        const got = run(k, c), want = reference(c);
        return got.ret === want.ret && got.pfn === want.pfn;
      }), { numRuns: 5000, seed: 7 });
      assert.ok(r.failed, `mutant ${mutant} survived the property`);
    });
  }
});
