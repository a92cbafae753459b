// The sparse page table: three real levels (PUD 1 GiB, PMD 2 MiB, PTE 4 KiB), huge leaves that zap
// as units (mm/memory.c, unmap_mapping_range()), tables that survive a zap (docs/model-decisions.md,
// "Faults"), and copy for fork.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { PageTable, type Leaf } from '../src/kernel/mm/pgtable.ts';

const KiB = 1024, MiB = 2 ** 20, GiB = 2 ** 30;
const PAGE = 4 * KiB;
/** a user address well inside the x86-64 user half, 1 GiB-aligned */
const BASE = 0x7f00_0000_0000;
const leaf = (pfn: number, write = true): Leaf => ({ pfn, write, cache: 'UC' });

describe('insert and lookup', () => {
  test('a PUD leaf translates its whole 1 GiB and reports order 18 at the aligned VA', () => {
    const pt = new PageTable();
    assert.ok(pt.pudNone(BASE));
    assert.equal(pt.insertPud(BASE, leaf(0x200000)), true);
    for (const off of [0, PAGE, 123 * MiB + 5, GiB - 1]) {
      const e = pt.lookup(BASE + off);
      assert.ok(e, `lookup at +0x${off.toString(16)}`);
      assert.equal(e.order, 18);
      assert.equal(e.va, BASE);
      assert.equal(e.pfn, 0x200000);
    }
    assert.equal(pt.lookup(BASE + GiB), null, 'the next GiB is not mapped');
    assert.equal(pt.lookup(BASE - 1), null);
    assert.equal(pt.pudNone(BASE), false);
    assert.equal(pt.insertPud(BASE, leaf(0x400000)), false, 'a present PUD is not replaced');
    assert.equal(pt.lookup(BASE)!.pfn, 0x200000);
    assert.equal(pt.insertPmd(BASE + 2 * MiB, leaf(1)), false, 'no PMD under a huge PUD');
    assert.equal(pt.insertPte(BASE + PAGE, leaf(1)), false, 'no PTE under a huge PUD');
  });

  test('a PMD leaf translates its 2 MiB; the PUD slot then holds a table, not a leaf', () => {
    const pt = new PageTable();
    const va = BASE + 6 * MiB;
    assert.ok(pt.pmdNone(va));
    assert.equal(pt.insertPmd(va, leaf(0x1400, false)), true);
    const e = pt.lookup(va + 2 * MiB - 1)!;
    assert.deepEqual(e, { pfn: 0x1400, write: false, cache: 'UC', va, order: 9 });
    assert.equal(pt.lookup(va - 1), null);
    assert.equal(pt.lookup(va + 2 * MiB), null);
    assert.equal(pt.pudNone(va), false, 'the PUD slot now points to a PMD table');
    assert.equal(pt.pmdNone(va), false);
    assert.equal(pt.pmdNone(va + 2 * MiB), true, 'the neighbouring PMD slot is still none');
    assert.equal(pt.insertPud(BASE, leaf(0)), false, 'a PUD leaf cannot go where a PMD table is');
    assert.equal(pt.insertPmd(va, leaf(7)), false);
    assert.equal(pt.insertPte(va + PAGE, leaf(7)), false, 'no PTE under a huge PMD');
  });

  test('a PTE translates 4 KiB, keeps its attributes, and creates the PMD table and PTE table', () => {
    const pt = new PageTable();
    const va = BASE + 10 * MiB + 3 * PAGE;
    assert.equal(pt.insertPte(va, { pfn: 0xabcde, write: true, cache: 'WC' }), true);
    assert.deepEqual(pt.lookup(va + 17), { pfn: 0xabcde, write: true, cache: 'WC', va, order: 0 });
    assert.equal(pt.lookup(va + PAGE), null);
    assert.equal(pt.lookup(va - PAGE), null);
    assert.equal(pt.pmdNone(va), false, 'the PMD slot holds the PTE table');
    assert.equal(pt.pmdNone(va + PAGE), false, 'and that covers the whole 2 MiB span');
    assert.equal(pt.insertPmd(va - (va % (2 * MiB)), leaf(0)), false, 'no PMD leaf over a PTE table');
    assert.equal(pt.insertPte(va, leaf(1)), false, 'an existing PTE is left alone');
    assert.equal(pt.lookup(va)!.pfn, 0xabcde);
    assert.equal(pt.insertPte(va + PAGE, leaf(0xabcdf, false)), true);
    assert.equal(pt.lookup(va + PAGE)!.write, false);
  });

  test('pfns and addresses beyond 2^32 survive exactly', () => {
    const pt = new PageTable();
    const va = 0x7fff_ffe0_0000 - 2 * MiB; // near the top of user space, 2 MiB-aligned
    const pfn = 0x2000_0000 + 0x1234; // a 2 TiB-window physical page
    pt.insertPte(va + 5 * PAGE, leaf(pfn));
    assert.equal(pt.lookup(va + 5 * PAGE + 1)!.pfn, pfn);
    assert.equal(pt.lookup(va + 5 * PAGE)!.va, va + 5 * PAGE);
  });
});

describe('zapRange', () => {
  test('a PMD leaf only partly covered is cleared whole', () => {
    const pt = new PageTable();
    const va = BASE + 4 * MiB;
    pt.insertPmd(va, leaf(0x800));
    assert.equal(pt.zapRange(va + MiB, va + MiB + PAGE), 1);
    assert.equal(pt.lookup(va), null, 'the start of the 2 MiB page is gone too');
    assert.equal(pt.lookup(va + 2 * MiB - 1), null);
    assert.equal(pt.pmdNone(va), true, 'a huge leaf leaves a none slot: it can fault huge again');
  });

  test('a PUD leaf only partly covered is cleared whole', () => {
    const pt = new PageTable();
    pt.insertPud(BASE, leaf(0x40000));
    assert.equal(pt.zapRange(BASE + GiB - PAGE, BASE + GiB + 5 * MiB), 1);
    assert.equal(pt.lookup(BASE), null);
    assert.equal(pt.pudNone(BASE), true);
  });

  test('PTEs are cleared exactly inside the range; PTEs outside it stay', () => {
    const pt = new PageTable();
    const va = BASE + 2 * MiB;
    for (let i = 0; i < 8; i++) pt.insertPte(va + i * PAGE, leaf(100 + i));
    assert.equal(pt.zapRange(va + 2 * PAGE, va + 5 * PAGE), 3);
    const left = [...pt.entries()].map((e) => (e.va - va) / PAGE);
    assert.deepEqual(left, [0, 1, 5, 6, 7]);
    assert.equal(pt.zapRange(va + 2 * PAGE, va + 5 * PAGE), 0, 'zapping again clears nothing');
  });

  test('a range crossing PMD and PUD boundaries clears every kind of leaf in it', () => {
    const pt = new PageTable();
    // PTEs at the end of one GiB, a PMD at the start of the next, a PUD after that
    pt.insertPte(BASE + GiB - PAGE, leaf(1));
    pt.insertPte(BASE + GiB - 2 * PAGE, leaf(2));
    pt.insertPmd(BASE + GiB, leaf(0x200));
    pt.insertPud(BASE + 2 * GiB, leaf(0x40000));
    pt.insertPte(BASE + 3 * GiB, leaf(3)); // outside
    assert.equal(pt.zapRange(BASE + GiB - PAGE, BASE + 2 * GiB + PAGE), 3);
    assert.deepEqual([...pt.entries()].map((e) => [e.va - BASE, e.order]), [[GiB - 2 * PAGE, 0], [3 * GiB, 0]]);
  });

  test('zapping keeps the tables: a span once mapped with PTEs keeps a non-none PMD slot', () => {
    const pt = new PageTable();
    const span = BASE + 8 * MiB;
    pt.insertPte(span + 3 * PAGE, leaf(9));
    assert.equal(pt.zapRange(span, span + 2 * MiB), 1);
    assert.equal(pt.lookup(span + 3 * PAGE), null);
    assert.equal(pt.pmdNone(span), false, 'the empty PTE table is still there (zap does not free tables)');
    assert.equal(pt.pudNone(span), false);
    assert.equal(pt.insertPmd(span, leaf(0x1000)), false, 'so a PMD-order fault is not possible there');
    assert.equal(pt.insertPte(span, leaf(0x1000)), true, 'but PTEs can be installed again');
  });
});

describe('freeTables', () => {
  test('drops PTE and PMD tables whose span meets no VMA, keeps those that still do', () => {
    const pt = new PageTable();
    const a = BASE + 2 * MiB, b = BASE + 6 * MiB;
    pt.insertPte(a, leaf(1));
    pt.insertPte(b, leaf(2));
    pt.zapRange(a, a + 2 * MiB);
    // a VMA still covers b's span, none covers a's
    const used = (lo: number, hi: number) => lo < b + 2 * MiB && hi > b;
    pt.freeTables(a, a + 2 * MiB, used);
    assert.equal(pt.pmdNone(a), true, "a's PTE table is freed");
    assert.equal(pt.pmdNone(b), false, "b's table is outside the range and stays");
    assert.equal(pt.pudNone(a), false, 'the PMD table still holds b');
    assert.equal(pt.insertPmd(a, leaf(0x200)), true, 'the span can now take a PMD leaf');
  });

  test('keeps a table whose 2 MiB span is still partly used; frees the PMD table when the GiB is unused', () => {
    const pt = new PageTable();
    const a = BASE + 2 * MiB;
    pt.insertPte(a, leaf(1));
    pt.insertPte(a + MiB, leaf(2));
    pt.zapRange(a, a + MiB);
    pt.freeTables(a, a + MiB, (lo, hi) => lo < a + 2 * MiB && hi > a + MiB);
    assert.equal(pt.pmdNone(a), false, 'the 2 MiB span still meets a VMA');
    assert.equal(pt.lookup(a + MiB)!.pfn, 2);
    pt.zapRange(a + MiB, a + 2 * MiB);
    pt.freeTables(a, a + 2 * MiB, () => false);
    assert.equal(pt.pmdNone(a), true);
    assert.equal(pt.pudNone(a), true, 'an empty PMD table of an unused GiB is dropped too');
  });

  test('leaves huge leaves alone (they are not tables)', () => {
    const pt = new PageTable();
    pt.insertPud(BASE, leaf(0x40000));
    pt.freeTables(BASE, BASE + GiB, () => false);
    assert.equal(pt.lookup(BASE)!.order, 18);
  });
});

describe('entries and copyRange', () => {
  test('entries() yields every leaf once, in VA order, whatever the insertion order, and filters by range', () => {
    const pt = new PageTable();
    const inserts: Array<[number, 0 | 9 | 18]> = [
      [BASE + 3 * GiB, 18],
      [BASE + 4 * MiB + 7 * PAGE, 0],
      [BASE + GiB + 2 * MiB, 9],
      [BASE + 4 * MiB + 2 * PAGE, 0],
      [BASE, 9],
      [BASE + 4 * MiB + 511 * PAGE, 0],
      [BASE + GiB, 9],
    ];
    inserts.forEach(([va, o], i) => {
      const l = leaf(1000 + i);
      assert.ok(o === 18 ? pt.insertPud(va, l) : o === 9 ? pt.insertPmd(va, l) : pt.insertPte(va, l));
    });
    const all = [...pt.entries()];
    const sorted = [...inserts].sort((x, y) => x[0] - y[0]);
    assert.deepEqual(all.map((e) => [e.va, e.order]), sorted);
    for (let i = 1; i < all.length; i++) assert.ok(all[i - 1].va < all[i].va);
    // a range selects the leaves that overlap it
    const some = [...pt.entries(BASE + 4 * MiB + 3 * PAGE, BASE + GiB + 1)].map((e) => e.va - BASE);
    assert.deepEqual(some, [4 * MiB + 7 * PAGE, 4 * MiB + 511 * PAGE, GiB]);
    const partPud = [...pt.entries(BASE + 3 * GiB + 5 * MiB, BASE + 3 * GiB + 6 * MiB)];
    assert.deepEqual(partPud.map((e) => [e.va - BASE, e.order]), [[3 * GiB, 18]], 'a huge leaf overlapping the range is included');
  });

  test('copyRange copies the leaves of the range at their own level, with their attributes, and nothing else', () => {
    const src = new PageTable();
    src.insertPud(BASE, leaf(0x40000));
    src.insertPmd(BASE + GiB, { pfn: 0x600, write: false, cache: 'WC' });
    src.insertPte(BASE + GiB + 2 * MiB + PAGE, leaf(0x777));
    src.insertPte(BASE + 5 * GiB, leaf(0x888)); // outside the copied range
    const dst = new PageTable();
    dst.insertPte(BASE + GiB + 2 * MiB + 2 * PAGE, leaf(0x999)); // the child already has one entry
    src.copyRange(dst, BASE, BASE + 2 * GiB);
    assert.deepEqual(
      [...dst.entries()].map((e) => [e.va - BASE, e.order, e.pfn, e.write, e.cache]),
      [
        [0, 18, 0x40000, true, 'UC'],
        [GiB, 9, 0x600, false, 'WC'],
        [GiB + 2 * MiB + PAGE, 0, 0x777, true, 'UC'],
        [GiB + 2 * MiB + 2 * PAGE, 0, 0x999, true, 'UC'],
      ],
    );
    // the source is unchanged and independent of the copy
    dst.zapRange(BASE, BASE + 2 * GiB);
    assert.equal([...src.entries()].length, 4);
  });
});

describe('what a step naming a span reads (describe)', () => {
  /** describe's output as a list of the numbers it mixed */
  const seen = (pt: PageTable, lo: number, hi: number, level?: number): number[] => {
    const out: number[] = [];
    pt.describe(lo, hi, { mix: (x) => out.push(x), num: (x) => out.push(x) }, level);
    return out;
  };

  test('one slot of a level shows that word only: PTEs below a PUD or PMD slot are not read there', () => {
    const a = new PageTable(), b = new PageTable();
    a.insertPte(BASE, leaf(0x100));
    b.insertPte(BASE, leaf(0x100));
    b.insertPte(BASE + PAGE, leaf(0x101)); // another page under the same tables
    for (const level of [2, 1]) {
      const size = level === 2 ? GiB : 2 * MiB;
      assert.deepEqual(seen(a, BASE, BASE + size, level), seen(b, BASE, BASE + size, level), `level ${level}`);
    }
    // the PTE level, and a span of every level, tell the two apart
    assert.notDeepEqual(seen(a, BASE + PAGE, BASE + 2 * PAGE, 0), seen(b, BASE + PAGE, BASE + 2 * PAGE, 0));
    assert.notDeepEqual(seen(a, BASE, BASE + GiB), seen(b, BASE, BASE + GiB));
  });

  test('a slot reads none, a table, or a leaf with its value, whether the leaf is at that level or above', () => {
    const none = new PageTable(), table = new PageTable(), pmdLeaf = new PageTable(), pudLeaf = new PageTable();
    table.insertPte(BASE, leaf(0x100));
    pmdLeaf.insertPmd(BASE, leaf(0x200));
    pudLeaf.insertPud(BASE, leaf(0x40000));
    const pmdSlot = (pt: PageTable) => seen(pt, BASE, BASE + 2 * MiB, 1);
    const views = [none, table, pmdLeaf, pudLeaf].map(pmdSlot);
    assert.equal(new Set(views.map((v) => v.join())).size, 4, 'four different words');
    const other = new PageTable();
    other.insertPmd(BASE, leaf(0x400));
    assert.notDeepEqual(pmdSlot(other), pmdSlot(pmdLeaf), 'the leaf value is read');
    // a missing PMD table reads as an empty slot, as pmd_none() after pmd_alloc would
    const emptyTable = new PageTable();
    emptyTable.insertPte(BASE + 4 * MiB, leaf(0x300)); // same PUD table, another PMD slot
    assert.deepEqual(pmdSlot(emptyTable), pmdSlot(none));
  });
});
