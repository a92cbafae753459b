// mm_struct and vm_area_struct: the VMA list, its locks, and get_unmapped_area's choice of address.
import { ptSpan, walkSpan, type Acc, type Span } from '../sched/events.ts';
import type { File } from '../fs/file.ts';
import { RwSem, type KGen, type Sched } from '../sched/sched.ts';
import { PageTable, type Cache } from './pgtable.ts';
import type { MmuNotifier } from './mmu_notifier.ts';
import { PAGE_SIZE, PMD_SIZE, PUD_SIZE, TASK_SIZE } from '../../uapi/mman.ts';

const LEVEL_SIZE = [PAGE_SIZE, PMD_SIZE, PUD_SIZE];

export const VM_FAULT_OOM = 0x1, VM_FAULT_SIGBUS = 0x2, VM_FAULT_NOPAGE = 0x100, VM_FAULT_RETRY = 0x400;
export const VM_FAULT_FALLBACK = 0x800;
export type VmFault = number;
export const faultName = (r: VmFault) =>
  r & VM_FAULT_SIGBUS ? 'SIGBUS' : r & VM_FAULT_FALLBACK ? 'FALLBACK' : r & VM_FAULT_NOPAGE ? 'NOPAGE' : r & VM_FAULT_RETRY ? 'RETRY' : `0x${r.toString(16)}`;

export interface VmFlags {
  read: boolean;
  write: boolean;
  exec: boolean;
  shared: boolean;
  mayWrite: boolean;
  /** VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP, set by a PFN-map ->mmap */
  pfnmap: boolean;
}

export interface VmFaultCtx {
  vma: Vma;
  /** the faulting address */
  address: number;
  write: boolean;
  /** FAULT_FLAG_VMA_LOCK: the fault runs under the per-VMA lock, not mmap_lock */
  vmaLock: boolean;
}

export interface VmOps {
  readonly name: string;
  fault(vmf: VmFaultCtx): KGen<VmFault>;
  huge_fault?(vmf: VmFaultCtx, order: number): KGen<VmFault>;
  /** ->map_pages: vfio has none, which makes a PTE fault under the VMA lock retry under mmap_lock */
  map_pages?: true;
  /** ->open: a copy of the VMA was made (split, fork) */
  open?(vma: Vma): KGen;
  /** ->close: the VMA goes (munmap, exit), before its file reference is dropped */
  close?(vma: Vma): KGen;
}

export class Vma {
  vm_private_data: unknown = null;
  vm_ops: VmOps | null = null;
  cache: Cache = 'UC';
  /** unlinked from its mm (munmap); a racing per-VMA-lock fault must notice */
  detached = false;
  /** an anonymous VMA that has had its first fault */
  anon_vma = false;
  /** the per-VMA lock (vma_start_read / vma_start_write) */
  readonly vm_lock: RwSem;
  constructor(
    readonly mm: MmStruct,
    public vm_start: number,
    public vm_end: number,
    /** in pages, as the user passed it (the series keeps it so) */
    public vm_pgoff: number,
    public vm_file: File | null,
    public flags: VmFlags,
    readonly id: number,
  ) {
    this.vm_lock = new RwSem(mm.sched, `mm${mm.id}.vma${id}.vm_lock`, 'vm_lock');
  }
  get pages(): number {
    return (this.vm_end - this.vm_start) / PAGE_SIZE;
  }
  protString(): string {
    return `${this.flags.read ? 'r' : '-'}${this.flags.write ? 'w' : '-'}${this.flags.exec ? 'x' : '-'}${this.flags.shared ? 's' : 'p'}`;
  }
}

export class MmStruct {
  /** sorted by vm_start */
  vmas: Vma[] = [];
  readonly pt = new PageTable();
  readonly mmap_lock: RwSem;
  /** the secondary MMUs subscribed to this mm's invalidations (mmu_notifier.ts) */
  readonly notifier_subscriptions: MmuNotifier[] = [];
  /** object names for scheduling events */
  readonly ptKey: string;
  /** which ranges hold a leaf (space `mm<N>.leaves`): what a zap reads, apart from the tables */
  readonly leavesKey: string;
  readonly vmasKey: string;
  private nextVma = 0;
  /** deterministic stand-in for the randomized mmap_base: 2 MiB- but not 1 GiB-aligned */
  mmap_base = 0x7f5a3c800000;

  constructor(readonly sched: Sched, readonly id: number) {
    this.mmap_lock = new RwSem(sched, `mm${id}.mmap_lock`, 'mmap_lock');
    this.ptKey = `mm${id}.pt`;
    this.leavesKey = `mm${id}.leaves`;
    this.vmasKey = `mm${id}.vmas`;
  }

  /**
   * Scheduling spans of the page table (space `mm<N>.pt`): an insert writes the one slot it fills
   * (and the slot above if it allocates the table under it); a zap, a copy or a protection change
   * covers every level over its range. Faults on different 4 KiB pages therefore commute, as on
   * Linux, where they take different PTE locks.
   *
   * A second space, `mm<N>.leaves`, says where leaves are: whatever installs or clears a leaf
   * writes it over the leaf's range. A zap reads it over its range and writes only the slots of the
   * leaves present (zapSpans), so a fault's table walk, table allocation or missed access commutes
   * with a zap that has nothing of its own to clear, as on Linux, where zap_pte_range skips none
   * entries and never frees a table.
   *
   * A user access's MMU walk reads only the translation it ends in, so it names the leaves at its
   * address: every write that changes a translation writes `leaves` over it (an insert, a zap of a
   * present leaf, a range write), while allocating a table on the way to no leaf does not, and
   * commutes with the walk.
   */
  ptWalk(va: number): Span {
    return walkSpan(this.leavesKey, va);
  }
  /**
   * The slot of `level` (0 PTE, 1 PMD, 2 PUD) that covers `va`. Writes of one slot fill it or clear
   * a leaf, never a table pointer (tables go only with a write over every level, as
   * free_pgtables): they are `fill`s; a read of a slot pointing to a table says so (`table`).
   */
  ptSlot(va: number, level: 0 | 1 | 2, acc: Acc): Span {
    const size = LEVEL_SIZE[level];
    const lo = va - (va % size);
    const s = ptSpan(this.ptKey, lo, lo + size, acc, level);
    if (acc === 'w') s.fill = true;
    else if (level !== 0 && this.pt.isTable(va, level)) s.table = true;
    return s;
  }
  /** Every level over [start, end), and the leaves there. */
  ptRange(start: number, end: number, acc: Acc): Span[] {
    return [ptSpan(this.ptKey, start, end, acc), ptSpan(this.leavesKey, start, end, acc)];
  }
  /** Where leaves are over [start, end). */
  leafSpan(start: number, end: number, acc: Acc): Span {
    return ptSpan(this.leavesKey, start, end, acc);
  }
  /**
   * What zapping [start, end) touches in the state now: it reads where leaves are over the range,
   * and clears the leaves present (their slots, and their ranges of `leaves`). Announced through
   * announceTarget with zapTarget, so it is announced again if a leaf comes or goes first.
   */
  zapSpans(start: number, end: number): Span[] {
    const out = [this.leafSpan(start, end, 'r')];
    for (const e of this.pt.entries(start, end)) {
      const level = (e.order / 9) as 0 | 1 | 2;
      out.push(this.ptSlot(e.va, level, 'w'), this.leafSpan(e.va, e.va + LEVEL_SIZE[level], 'w'));
    }
    return out;
  }
  /** The leaves over [start, end) as a string, for announceTarget. */
  zapTarget(start: number, end: number): string {
    let s = '';
    for (const e of this.pt.entries(start, end)) s += `${e.va}/${e.order},`;
    return s;
  }

  newVma(start: number, end: number, pgoff: number, file: File | null, flags: VmFlags): Vma {
    return new Vma(this, start, end, pgoff, file, flags, this.nextVma++);
  }

  find_vma(addr: number): Vma | null {
    for (const v of this.vmas) if (addr < v.vm_end) return addr >= v.vm_start ? v : null;
    return null;
  }
  overlapping(start: number, end: number): Vma[] {
    return this.vmas.filter((v) => v.vm_start < end && v.vm_end > start);
  }
  insert(v: Vma): void {
    this.vmas.push(v);
    this.vmas.sort((a, b) => a.vm_start - b.vm_start);
  }
  remove(v: Vma): void {
    this.vmas.splice(this.vmas.indexOf(v), 1);
    v.detached = true;
  }

  /**
   * The address the kernel picks when mmap has no usable hint: top-down below mmap_base. What
   * Linux 6.12 was seen to do: a mapping of 2 MiB or more gets VA ≡ file offset (mod 2 MiB) and was
   * never 1 GiB-aligned; a shorter one is only page-aligned.
   */
  get_unmapped_area(len: number, fileOffset: number): number | null {
    const align = len >= PMD_SIZE ? PMD_SIZE : PAGE_SIZE;
    const want = fileOffset % align;
    const below = this.vmas.filter((v) => v.vm_start < this.mmap_base);
    let top = this.mmap_base;
    for (let i = below.length - 1; i >= -1; i--) {
      const lo = i >= 0 ? below[i].vm_end : 16 * PAGE_SIZE;
      let va = top - len;
      va -= (((va - want) % align) + align) % align;
      while (va >= lo && len >= PMD_SIZE && va % PUD_SIZE === 0) va -= align;
      if (va >= lo && va + len <= top) return va;
      if (i >= 0) top = Math.min(top, below[i].vm_start);
    }
    return null;
  }

  isFree(start: number, end: number): boolean {
    return end <= TASK_SIZE && start >= PAGE_SIZE && this.overlapping(start, end).length === 0;
  }
}
