// mm/memory.c: user accesses, fault dispatch by order, and unmap_mapping_range.
import type { Kernel } from '../kernel.ts';
import { announceTarget, ev, traced, type Ev, type KGen, type Span } from '../sched/sched.ts';
import type { AddressSpace, UserBuf } from '../fs/file.ts';
import { E } from '../../uapi/errno.ts';
import {
  MmStruct, VM_FAULT_FALLBACK, VM_FAULT_NOPAGE, VM_FAULT_RETRY, VM_FAULT_SIGBUS, type Vma, type VmFault, type VmFaultCtx,
} from './vma.ts';
import { PAGE_SIZE, PMD_ORDER, PUD_ORDER } from '../../uapi/mman.ts';
import { mmu_notifier_invalidate_range_end, mmu_notifier_invalidate_range_start } from './mmu_notifier.ts';

export type AccessResult =
  | { ok: true; value: bigint }
  | { signal: 'SIGBUS' | 'SIGSEGV'; code: 'BUS_ADRERR' | 'SEGV_MAPERR' | 'SEGV_ACCERR'; addr: number };

/** Retries of one access before the model calls it a livelock (Linux would spin; we report it). */
const MAX_FAULT_RETRIES = 16;

/**
 * A user load or store of `width` bytes at `va`: the MMU walks the page table; with a present leaf
 * the access reaches device memory in the same step (a TLB flush cannot land mid-instruction), else
 * the CPU faults and the access is retried after the fault handler installs an entry.
 */
export function* userAccess(k: Kernel, mm: MmStruct, va: number, width: number, write: boolean, data: bigint): KGen<AccessResult> {
  for (let tries = 0; tries < MAX_FAULT_RETRIES; tries++) {
    // the event names the walk and what the entry it finds reaches
    yield* announceTarget(() => accessTarget(mm, va, write), (pa) => accessEv(k, mm, va, width, write, pa));
    const e = mm.pt.lookup(va);
    if (e && (!write || e.write)) {
      const pa = e.pfn * PAGE_SIZE + (va - e.va);
      const value = k.pci.cpuAccess(pa, width, write, data, `${write ? 'store to' : 'load from'} va 0x${va.toString(16)}`);
      return { ok: true, value };
    }
    const r = yield* do_user_addr_fault(k, mm, va, write);
    if (r !== 'retry') return r;
  }
  k.violation('no-deadlock', `access at 0x${va.toString(16)} kept faulting (${MAX_FAULT_RETRIES} retries): livelock`);
  return { signal: 'SIGBUS', code: 'BUS_ADRERR', addr: va };
}

/** The physical address a user access at `va` reaches through the current entry, or -1 (it faults). */
function accessTarget(mm: MmStruct, va: number, write: boolean): number {
  const e = mm.pt.lookup(va);
  return e && (!write || e.write) ? e.pfn * PAGE_SIZE + (va - e.va) : -1;
}
function accessEv(k: Kernel, mm: MmStruct, va: number, width: number, write: boolean, pa: number): Ev {
  const op = write ? 'user_store' : 'user_load';
  if (pa < 0) return ev(op, '', 'r', undefined, [mm.ptWalk(va)]);
  const a = k.pci.accessEv(pa, width, write);
  return ev(op, '', 'r', a.also, [mm.ptWalk(va), ...a.spans]);
}

/**
 * copy_to_user: store `bytes` at the user address, faulting pages in as a user store would; a fault
 * that cannot be resolved makes the copy fail (-EFAULT), as the exception fixup does.
 */
export function* copy_to_user(k: Kernel, user: UserBuf, bytes: Uint8Array): KGen<number> {
  // might_fault (mm/memory.c __might_fault): lockdep is told of a read of mmap_lock whether or not
  // the copy faults (might_lock_read), so every lock held here is ordered before mmap_lock
  k.sched.lockdep.acquire(k.sched.cur(), user.mm.mmap_lock, 'r');
  for (let i = 0; i < bytes.length; i++) {
    const r = yield* userAccess(k, user.mm, user.va + i, 1, true, BigInt(bytes[i]));
    if ('signal' in r) return -E.EFAULT;
  }
  return 0;
}

const accessOk = (v: Vma, write: boolean) => (write ? v.flags.write : v.flags.read || v.flags.exec || v.flags.write);

/**
 * arch/x86/mm/fault.c: first under the per-VMA lock (lock_vma_under_rcu), and on VM_FAULT_RETRY
 * again under mmap_lock, which is why a 4 KiB fault in a span with no PMD shows the PMD order twice.
 */
export function* do_user_addr_fault(k: Kernel, mm: MmStruct, va: number, write: boolean): KGen<AccessResult | 'retry'> {
  if (k.variant.perVmaLock) {
    yield ev('lock_vma_under_rcu', mm.vmasKey, 'r');
    const vma = mm.find_vma(va);
    let locked = !!vma && (yield* vma!.vm_lock.down_read_trylock());
    // lock_vma_under_rcu rechecks after locking: the VMA may have been split or unmapped meanwhile
    if (locked && (vma!.detached || va < vma!.vm_start || va >= vma!.vm_end)) {
      yield* vma!.vm_lock.up_read();
      locked = false;
    }
    if (vma && locked) {
      if (!accessOk(vma, write)) {
        yield* vma.vm_lock.up_read();
        return { signal: 'SIGSEGV', code: 'SEGV_ACCERR', addr: va };
      }
      const vmf: VmFaultCtx = { vma, address: va, write, vmaLock: true };
      const r = yield* traced(k.sched, 'handle_mm_fault', [vmf], handle_mm_fault(k, vmf));
      if (!(r & VM_FAULT_RETRY)) {
        yield* vma.vm_lock.up_read();
        return r & VM_FAULT_SIGBUS ? { signal: 'SIGBUS', code: 'BUS_ADRERR', addr: va } : 'retry';
      }
      // VM_FAULT_RETRY: the handler already dropped the VMA lock
    }
  }
  yield* mm.mmap_lock.down_read();
  const vma = mm.find_vma(va);
  let res: AccessResult | 'retry';
  if (!vma) res = { signal: 'SIGSEGV', code: 'SEGV_MAPERR', addr: va };
  else if (!accessOk(vma, write)) res = { signal: 'SIGSEGV', code: 'SEGV_ACCERR', addr: va };
  else {
    const vmf: VmFaultCtx = { vma, address: va, write, vmaLock: false };
    const r = yield* traced(k.sched, 'handle_mm_fault', [vmf], handle_mm_fault(k, vmf));
    res = r & VM_FAULT_SIGBUS ? { signal: 'SIGBUS', code: 'BUS_ADRERR', addr: va } : 'retry';
  }
  yield* mm.mmap_lock.up_read();
  return res;
}

/**
 * __handle_mm_fault: PUD order if the PUD is none, then allocate the PMD table and try PMD order if
 * the PMD is none, then the PTE path. FALLBACK means "try the next smaller level".
 */
export function* handle_mm_fault(k: Kernel, vmf: VmFaultCtx): KGen<VmFault> {
  const { vma } = vmf;
  const mm = vma.mm;
  const ops = vma.vm_ops;
  if (!ops) return VM_FAULT_SIGBUS; // only VM_PFNMAP file mappings are modelled
  // Huge PFN-map faults need THP "always": with "madvise" a VMA needs VM_HUGEPAGE, which vfio-pci
  // never sets (mm/huge_memory.c, __thp_vma_allowable_orders()); with "never" there are none.
  const thp = k.config.thp === 'always' && ops.huge_fault;
  yield ev('pud_none', '', 'r', undefined, [mm.ptSlot(vmf.address, 2, 'r')]);
  if (thp && k.config.ARCH_SUPPORTS_PUD_PFNMAP && mm.pt.pudNone(vmf.address)) {
    const r = yield* traced(k.sched, 'huge_fault', [vmf], ops.huge_fault!(vmf, PUD_ORDER));
    if (!(r & VM_FAULT_FALLBACK)) return r;
  }
  // allocating the PMD table writes the PUD slot; if it is there already (tables are never freed
  // under a fault, which holds the VMA or mmap lock) this only reads it
  yield ev('pmd_alloc', '', 'r', undefined, [mm.ptSlot(vmf.address, 2, mm.pt.pudNone(vmf.address) ? 'w' : 'r'), mm.ptSlot(vmf.address, 1, 'r')]);
  mm.pt.pmdAlloc(vmf.address);
  if (thp && k.config.ARCH_SUPPORTS_PMD_PFNMAP && mm.pt.pmdNone(vmf.address)) {
    const r = yield* traced(k.sched, 'huge_fault', [vmf], ops.huge_fault!(vmf, PMD_ORDER));
    if (!(r & VM_FAULT_FALLBACK)) return r;
  }
  // handle_pte_fault -> do_fault: a PFN map has no ->map_pages, so under the VMA lock
  // vmf_can_call_fault() drops it and asks for a retry under mmap_lock.
  if (vmf.vmaLock && !ops.map_pages) {
    yield* vma.vm_lock.up_read();
    return VM_FAULT_RETRY;
  }
  return yield* traced(k.sched, 'fault', [vmf], ops.fault(vmf));
}

/**
 * The slots an insert of `order` at `va` touches: its own (written), the ones above it (read; and
 * written when the insert allocates the table it lands in, which fills the slot above).
 */
export function insertSpans(mm: MmStruct, va: number, order: number): Span[] {
  const size = PAGE_SIZE * 2 ** order, lo = va - (va % size);
  const leaf = mm.leafSpan(lo, lo + size, 'w');
  if (order === PUD_ORDER) return [mm.ptSlot(va, 2, 'w'), leaf];
  const pudNone = mm.pt.pudNone(va);
  if (order === PMD_ORDER) return [mm.ptSlot(va, 2, pudNone ? 'w' : 'r'), mm.ptSlot(va, 1, 'w'), leaf];
  return [mm.ptSlot(va, 2, pudNone ? 'w' : 'r'), mm.ptSlot(va, 1, mm.pt.pmdNone(va) ? 'w' : 'r'), mm.ptSlot(va, 0, 'w'), leaf];
}

/**
 * zap_page_range_single over [start, end) of `mm`, announced by what it will clear
 * (MmStruct.zapSpans), between the MMU notifier's invalidate_range_start and _end (mm/memory.c), so
 * a secondary MMU (KVM's EPT) drops its entries for the range before the primary ones go.
 */
export function* zapRange(mm: MmStruct, start: number, end: number): KGen<number> {
  const range = yield* mmu_notifier_invalidate_range_start(mm, start, end, 'MMU_NOTIFY_CLEAR');
  yield* announceTarget(() => mm.zapTarget(start, end), () => ev('zap_page_range', '', 'w', undefined, mm.zapSpans(start, end)));
  const n = mm.pt.zapRange(start, end);
  yield* mmu_notifier_invalidate_range_end(range);
  return n;
}

/** vmf_insert_pfn / _pmd / _pud: install a leaf if the slot is still none. */
export function* insertPfn(k: Kernel, vmf: VmFaultCtx, pfn: number, order: number): KGen<VmFault> {
  const { vma } = vmf;
  const mm = vma.mm;
  yield ev('insert_pfn', '', 'w', undefined, insertSpans(mm, vmf.address, order));
  const pagesize = PAGE_SIZE * 2 ** order;
  const va = vmf.address - (vmf.address % pagesize);
  const leaf = { pfn, write: vma.flags.write, cache: vma.cache };
  const pt = vma.mm.pt;
  const done = order === PUD_ORDER ? pt.insertPud(va, leaf) : order === PMD_ORDER ? pt.insertPmd(va, leaf) : order === 0 ? pt.insertPte(va, leaf) : null;
  if (done === null) return VM_FAULT_FALLBACK;
  if (done) k.note(`install ${['PTE', 'PMD', 'PUD'][order / 9]} va 0x${va.toString(16)} -> pfn 0x${pfn.toString(16)} (mm${vma.mm.id})`);
  return VM_FAULT_NOPAGE;
}

/**
 * unmap_mapping_range(mapping, holebegin, holelen, even_cows): zap, in every VMA of the file, the
 * part whose file offsets (from vm_pgoff) meet [holebegin, holebegin + holelen). holelen 0 means to
 * the end of the file. VMAs stay; only their page-table leaves go.
 */
export function* unmap_mapping_range(k: Kernel, mapping: AddressSpace, holebegin: number, holelen: number): KGen<number> {
  const first = Math.floor(holebegin / PAGE_SIZE);
  const last = holelen === 0 ? Infinity : first + Math.ceil(holelen / PAGE_SIZE) - 1;
  yield ev('i_mmap_lock_read', `${mapping.name}.i_mmap`, 'r');
  let n = 0;
  for (const vma of [...mapping.i_mmap]) {
    const vfirst = vma.vm_pgoff, vlast = vma.vm_pgoff + vma.pages - 1;
    if (vlast < first || vfirst > last) continue;
    const zfirst = Math.max(first, vfirst), zlast = Math.min(last, vlast);
    const start = vma.vm_start + (zfirst - vfirst) * PAGE_SIZE;
    const end = vma.vm_start + (zlast - vfirst + 1) * PAGE_SIZE;
    const z = yield* zapRange(vma.mm, start, end);
    n += z;
    k.note(`zap mm${vma.mm.id} [0x${start.toString(16)}, 0x${end.toString(16)}) of ${mapping.name}: ${z} entries`);
  }
  return n;
}
