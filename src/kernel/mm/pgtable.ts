// A sparse x86-64 page table: PUD entries (1 GiB), PMD entries (2 MiB) and PTEs (4 KiB).
// Levels are real: a PUD slot is none, a huge leaf, or points to a PMD table; a PMD slot is none, a
// huge leaf, or points to a PTE table. Zapping clears leaves but keeps tables (as zap_page_range
// does), so a 2 MiB span once populated with PTEs stays a PTE table and never faults at PMD order
// again until munmap frees the table. PTE tables are packed typed arrays so a million PTEs cost
// megabytes, not hundreds of megabytes.
import { PAGE_SHIFT, PAGE_SIZE, PMD_ORDER, PMD_SIZE, PUD_ORDER, PUD_SIZE } from '../../uapi/mman.ts';

export type Cache = 'UC' | 'WC';
export interface Leaf {
  pfn: number;
  write: boolean;
  cache: Cache;
}
export interface Entry extends Leaf {
  va: number;
  order: 0 | 9 | 18;
}

const PTRS = 512;
const F_PRESENT = 1, F_WRITE = 2, F_WC = 4;

class PteTable {
  readonly pfn = new Float64Array(PTRS);
  readonly flags = new Uint8Array(PTRS);
  count = 0;
}
type PmdSlot = { huge: Leaf } | { ptes: PteTable };
class PmdTable {
  readonly slots = new Map<number, PmdSlot>();
}
type PudSlot = { huge: Leaf } | { pmds: PmdTable };

const NO_ENTRIES: readonly Entry[] = [];
/** A table's slot numbers in order (one slot, the common case, without a sort). */
const sortedKeys = (m: Map<number, unknown>): number[] => (m.size === 1 ? [m.keys().next().value as number] : [...m.keys()].sort((a, b) => a - b));

const pudIdx = (va: number) => Math.floor(va / PUD_SIZE);
const pmdIdx = (va: number) => Math.floor(va / PMD_SIZE) % PTRS;
const pteIdx = (va: number) => Math.floor(va / PAGE_SIZE) % PTRS;

/** A leaf's value (PFN, write, cache mode), as PageTable.describe feeds it. */
function describeLeaf(l: Leaf, out: { mix(x: number): unknown; num(x: number): unknown }): void {
  out.num(l.pfn);
  out.mix((l.write ? 1 : 0) | (l.cache === 'WC' ? 2 : 0));
}

export class PageTable {
  private readonly puds = new Map<number, PudSlot>();

  /** The leaf that translates `va`, if any, with its level. */
  lookup(va: number): Entry | null {
    const pud = this.puds.get(pudIdx(va));
    if (!pud) return null;
    if ('huge' in pud) return { ...pud.huge, va: va - (va % PUD_SIZE), order: PUD_ORDER as 18 };
    const pmd = pud.pmds.slots.get(pmdIdx(va));
    if (!pmd) return null;
    if ('huge' in pmd) return { ...pmd.huge, va: va - (va % PMD_SIZE), order: PMD_ORDER as 9 };
    const i = pteIdx(va), f = pmd.ptes.flags[i];
    if (!(f & F_PRESENT)) return null;
    return { pfn: pmd.ptes.pfn[i], write: !!(f & F_WRITE), cache: f & F_WC ? 'WC' : 'UC', va: va - (va % PAGE_SIZE), order: 0 };
  }

  /**
   * Feed the translation a hardware walk of `va` ends in to `out`: none, or the leaf (its value,
   * order and base). Which tables the walk passed is not part of it: a table allocated or not on
   * the way to no leaf is the same "none" to the access that walked.
   */
  describeWalk(va: number, out: { mix(x: number): unknown; num(x: number): unknown }): void {
    const e = this.lookup(va);
    if (!e) return void out.mix(0);
    out.mix(1 + e.order);
    out.num(e.va);
    describeLeaf(e, out);
  }

  /**
   * Feed what [lo, hi) holds, slot by slot at every level (none, a leaf and its value, or a table),
   * to `out`: the explorer's record of what a step naming that span read. With `level` (0 PTE, 1
   * PMD, 2 PUD), only that level's slots: a step that names one slot (pud_none, pmd_alloc) reads
   * that word, not the tables below it, as the dependence relation already assumes (events.ts).
   */
  describe(lo: number, hi: number, out: { mix(x: number): unknown; num(x: number): unknown }, level?: number): void {
    const leaf = (l: Leaf) => describeLeaf(l, out);
    if (level !== undefined) return this.describeLevel(lo, hi, level, out, leaf);
    for (let pi = pudIdx(lo); pi <= pudIdx(hi - 1); pi++) {
      const pud = this.puds.get(pi);
      out.num(pi);
      if (!pud) {
        out.mix(0);
        continue;
      }
      if ('huge' in pud) {
        out.mix(1);
        leaf(pud.huge);
        continue;
      }
      out.mix(2);
      const base = pi * PUD_SIZE;
      const a = Math.max(lo, base), b = Math.min(hi, base + PUD_SIZE);
      for (const mi of [...pud.pmds.slots.keys()].sort((x, y) => x - y)) {
        const mbase = base + mi * PMD_SIZE;
        if (mbase + PMD_SIZE <= a || mbase >= b) continue;
        const pmd = pud.pmds.slots.get(mi)!;
        out.num(mi);
        if ('huge' in pmd) {
          out.mix(1);
          leaf(pmd.huge);
          continue;
        }
        out.mix(2);
        const t = pmd.ptes;
        for (let i = pteIdx(Math.max(a, mbase)), last = pteIdx(Math.min(b, mbase + PMD_SIZE) - 1); i <= last; i++) {
          out.mix(t.flags[i]);
          if (t.flags[i]) out.num(t.pfn[i]);
        }
      }
    }
  }

  /**
   * The slots of one level over [lo, hi), as a walk that stops there sees them: none (also where a
   * table above is missing), a leaf (at this level or a huge one above, with its order), or a table.
   */
  private describeLevel(lo: number, hi: number, level: number, out: { mix(x: number): unknown; num(x: number): unknown }, leaf: (l: Leaf) => void): void {
    const size = level === 2 ? PUD_SIZE : level === 1 ? PMD_SIZE : PAGE_SIZE;
    // one slot on the way down: none or a huge leaf ends the walk, and so does a table at `level`
    const ends = (slot: { huge: Leaf } | object | undefined, order: number, atLevel: boolean): boolean => {
      if (!slot) out.mix(0);
      else if ('huge' in slot) {
        out.mix(order);
        leaf(slot.huge);
      } else if (atLevel) out.mix(2);
      else return false;
      return true;
    };
    for (let va = lo - (lo % size); va < hi; va += size) {
      const pud = this.puds.get(pudIdx(va));
      if (ends(pud, PUD_ORDER, level === 2)) continue;
      const pmd = (pud as { pmds: PmdTable }).pmds.slots.get(pmdIdx(va));
      if (ends(pmd, PMD_ORDER, level === 1)) continue;
      const t = (pmd as { ptes: PteTable }).ptes, i = pteIdx(va);
      out.mix(t.flags[i]);
      if (t.flags[i]) out.num(t.pfn[i]);
    }
  }

  /** Whether the slot of `level` (1 PMD, 2 PUD) covering `va` points to a table. */
  isTable(va: number, level: 1 | 2): boolean {
    const pud = this.puds.get(pudIdx(va));
    if (!pud || 'huge' in pud) return false;
    if (level === 2) return true;
    const pmd = pud.pmds.slots.get(pmdIdx(va));
    return !!pmd && 'ptes' in pmd;
  }
  pudNone(va: number): boolean {
    return !this.puds.has(pudIdx(va));
  }
  pmdNone(va: number): boolean {
    const pud = this.puds.get(pudIdx(va));
    return !pud || ('pmds' in pud && !pud.pmds.slots.has(pmdIdx(va)));
  }

  /** pmd_alloc: make sure a PMD table exists under the PUD slot (no-op if the slot is a huge leaf). */
  pmdAlloc(va: number): void {
    if (!this.puds.has(pudIdx(va))) this.puds.set(pudIdx(va), { pmds: new PmdTable() });
  }

  /** vmf_insert_pfn_pud: install only if the slot is none. Returns whether it installed. */
  insertPud(va: number, leaf: Leaf): boolean {
    if (!this.pudNone(va)) return false;
    this.puds.set(pudIdx(va), { huge: { ...leaf } });
    return true;
  }
  insertPmd(va: number, leaf: Leaf): boolean {
    this.pmdAlloc(va);
    const pud = this.puds.get(pudIdx(va))!;
    if ('huge' in pud || pud.pmds.slots.has(pmdIdx(va))) return false;
    pud.pmds.slots.set(pmdIdx(va), { huge: { ...leaf } });
    return true;
  }
  /** vmf_insert_pfn: allocates the PTE table as needed; an existing entry is left alone. */
  insertPte(va: number, leaf: Leaf): boolean {
    this.pmdAlloc(va);
    const pud = this.puds.get(pudIdx(va))!;
    if ('huge' in pud) return false;
    let pmd = pud.pmds.slots.get(pmdIdx(va));
    if (!pmd) pud.pmds.slots.set(pmdIdx(va), (pmd = { ptes: new PteTable() }));
    if ('huge' in pmd) return false;
    const i = pteIdx(va), t = pmd.ptes;
    if (t.flags[i] & F_PRESENT) return false;
    t.pfn[i] = leaf.pfn;
    t.flags[i] = F_PRESENT | (leaf.write ? F_WRITE : 0) | (leaf.cache === 'WC' ? F_WC : 0);
    t.count++;
    return true;
  }

  /**
   * Clear every leaf that overlaps [start, end). A huge leaf that overlaps only partly is cleared
   * whole: a PFN-map PMD/PUD is not split into PTEs, it is zapped and refaults. Returns the count.
   */
  zapRange(start: number, end: number): number {
    let n = 0;
    for (let pi = pudIdx(start); pi <= pudIdx(end - 1); pi++) {
      const pud = this.puds.get(pi);
      if (!pud) continue;
      if ('huge' in pud) {
        this.puds.delete(pi);
        n++;
        continue;
      }
      const base = pi * PUD_SIZE;
      const lo = Math.max(start, base), hi = Math.min(end, base + PUD_SIZE);
      for (let mi = pmdIdx(lo); mi <= pmdIdx(hi - 1); mi++) {
        const pmd = pud.pmds.slots.get(mi);
        if (!pmd) continue;
        if ('huge' in pmd) {
          pud.pmds.slots.delete(mi);
          n++;
          continue;
        }
        const mbase = base + mi * PMD_SIZE;
        const t = pmd.ptes;
        if (t.count === 0) continue;
        const a = Math.max(lo, mbase), b = Math.min(hi, mbase + PMD_SIZE);
        for (let i = pteIdx(a), last = pteIdx(b - 1); i <= last; i++) {
          if (t.flags[i] & F_PRESENT) {
            t.flags[i] = 0;
            t.count--;
            n++;
          }
        }
      }
    }
    return n;
  }

  /**
   * change_protection with the VMA's new vm_page_prot: every leaf wholly inside [start, end) gets the
   * write bit `write` (pte_modify / pmd_modify: a shared PFN map wants no write notification, so its
   * entries become writable as soon as the VMA is); a huge leaf that overlaps only partly is zapped,
   * as splitting a PFN-map PMD/PUD does (it refaults at a smaller order). Returns the leaves changed.
   */
  protectRange(start: number, end: number, write: boolean): number {
    let n = 0;
    const huge = (leaf: Leaf, base: number, size: number, drop: () => void) => {
      if (base >= start && base + size <= end) leaf.write = write;
      else drop();
      n++;
    };
    for (let pi = pudIdx(start); pi <= pudIdx(end - 1); pi++) {
      const pud = this.puds.get(pi);
      if (!pud) continue;
      const base = pi * PUD_SIZE;
      if ('huge' in pud) {
        huge(pud.huge, base, PUD_SIZE, () => this.puds.delete(pi));
        continue;
      }
      const lo = Math.max(start, base), hi = Math.min(end, base + PUD_SIZE);
      for (let mi = pmdIdx(lo); mi <= pmdIdx(hi - 1); mi++) {
        const pmd = pud.pmds.slots.get(mi);
        if (!pmd) continue;
        const mbase = base + mi * PMD_SIZE;
        if ('huge' in pmd) {
          huge(pmd.huge, mbase, PMD_SIZE, () => pud.pmds.slots.delete(mi));
          continue;
        }
        const t = pmd.ptes, a = Math.max(lo, mbase), b = Math.min(hi, mbase + PMD_SIZE);
        for (let i = pteIdx(a), last = pteIdx(b - 1); i <= last; i++)
          if (t.flags[i] & F_PRESENT) {
            t.flags[i] = write ? t.flags[i] | F_WRITE : t.flags[i] & ~F_WRITE;
            n++;
          }
      }
    }
    return n;
  }

  /**
   * free_pgtables after munmap: drop PTE tables whose 2 MiB span and PMD tables whose 1 GiB span
   * no longer meet any VMA (`used` answers whether [a, b) meets one).
   */
  freeTables(start: number, end: number, used: (a: number, b: number) => boolean): void {
    for (let pi = pudIdx(start); pi <= pudIdx(end - 1); pi++) {
      const pud = this.puds.get(pi);
      if (!pud || 'huge' in pud) continue;
      const base = pi * PUD_SIZE;
      for (const [mi, pmd] of pud.pmds.slots) {
        const mb = base + mi * PMD_SIZE;
        if ('ptes' in pmd && mb < end && mb + PMD_SIZE > start && !used(mb, mb + PMD_SIZE)) pud.pmds.slots.delete(mi);
      }
      if (pud.pmds.slots.size === 0 && !used(base, base + PUD_SIZE)) this.puds.delete(pi);
    }
  }

  /** Every leaf in [start, end), in VA order. */
  entries(start = 0, end = Number.MAX_SAFE_INTEGER): Iterable<Entry> {
    // the invariants ask after every step, mostly of empty tables: no generator for those
    return this.puds.size === 0 ? NO_ENTRIES : this.leaves(start, end);
  }
  private *leaves(start: number, end: number): Generator<Entry> {
    const keys = sortedKeys(this.puds);
    for (const pi of keys) {
      const base = pi * PUD_SIZE;
      if (base + PUD_SIZE <= start || base >= end) continue;
      const pud = this.puds.get(pi)!;
      if ('huge' in pud) {
        yield { ...pud.huge, va: base, order: 18 };
        continue;
      }
      const mkeys = sortedKeys(pud.pmds.slots);
      for (const mi of mkeys) {
        const mb = base + mi * PMD_SIZE;
        if (mb + PMD_SIZE <= start || mb >= end) continue;
        const pmd = pud.pmds.slots.get(mi)!;
        if ('huge' in pmd) {
          yield { ...pmd.huge, va: mb, order: 9 };
          continue;
        }
        const t = pmd.ptes;
        if (t.count === 0) continue;
        // only the slots inside [start, end): a VMA's check after every step walks a few, not 512
        const first = Math.max(0, Math.ceil((start - mb) / PAGE_SIZE)), last = Math.min(PTRS, Math.ceil((end - mb) / PAGE_SIZE));
        for (let i = first; i < last; i++) {
          const va = mb + i * PAGE_SIZE;
          if (!(t.flags[i] & F_PRESENT)) continue;
          yield { pfn: t.pfn[i], write: !!(t.flags[i] & F_WRITE), cache: t.flags[i] & F_WC ? 'WC' : 'UC', va, order: 0 };
        }
      }
    }
  }

  /** copy_page_range for fork: copy the leaves of [start, end) into `dst`. */
  copyRange(dst: PageTable, start: number, end: number): void {
    // copy_pmd_range / copy_pte_range allocate the child's tables wherever the parent has a table
    // over the range, empty ones included (a zap leaves them), so the child's walk takes the same
    // levels: no PUD-order attempt under a PUD that points to a PMD table, and so on
    for (let pi = pudIdx(start); pi <= pudIdx(end - 1); pi++) {
      const pud = this.puds.get(pi);
      if (!pud || 'huge' in pud) continue;
      const base = pi * PUD_SIZE;
      dst.pmdAlloc(base);
      const lo = Math.max(start, base), hi = Math.min(end, base + PUD_SIZE);
      for (let mi = pmdIdx(lo); mi <= pmdIdx(hi - 1); mi++) {
        const pmd = pud.pmds.slots.get(mi);
        const dpud = dst.puds.get(pi);
        if (pmd && 'ptes' in pmd && dpud && 'pmds' in dpud && !dpud.pmds.slots.has(mi)) dpud.pmds.slots.set(mi, { ptes: new PteTable() });
      }
    }
    for (const e of this.entries(start, end)) {
      const leaf = { pfn: e.pfn, write: e.write, cache: e.cache };
      if (e.order === 18) dst.insertPud(e.va, leaf);
      else if (e.order === 9) dst.insertPmd(e.va, leaf);
      else dst.insertPte(e.va, leaf);
    }
  }

  /** Rough bytes held, for the memory benchmark. */
  tableCount(): { pmdTables: number; pteTables: number } {
    let pmdTables = 0, pteTables = 0;
    for (const pud of this.puds.values()) {
      if ('huge' in pud) continue;
      pmdTables++;
      for (const s of pud.pmds.slots.values()) if ('ptes' in s) pteTables++;
    }
    return { pmdTables, pteTables };
  }
}

export const pfnOf = (pa: number) => Math.floor(pa / PAGE_SIZE);
export const paOf = (pfn: number) => pfn * 2 ** PAGE_SHIFT;
