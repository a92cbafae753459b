// mm/gup.c, as far as iommufd uses it: pin_user_pages_fast(FOLL_LONGTERM) of a user range for
// IOMMU_IOAS_MAP (drivers/iommu/iommufd/pages.c, pfn_reader_user_pin). Pages are faulted in as a
// user access would (handle_mm_fault under mmap_lock); a VMA with VM_IO or VM_PFNMAP (a BAR
// mapping) cannot be pinned (check_vma_flags: -EFAULT), which is why a VMM maps a BAR into an IOAS
// through its DMABUF (IOMMU_IOAS_MAP_FILE) and not through its user address. VFIO's type1 IOMMU
// driver pins the same way and, for a PFN map, looks the PFN up itself (vfio_iommu_type1.ts), with
// the same fault-in (faultin_pfn: fixup_user_fault, then follow_pfnmap_start).
import type { Kernel } from '../kernel.ts';
import { ev, traced, type KGen } from '../sched/sched.ts';
import { E } from '../../uapi/errno.ts';
import { PAGE_SIZE } from '../../uapi/mman.ts';
import { handle_mm_fault } from './memory.ts';
import { VM_FAULT_RETRY, VM_FAULT_SIGBUS, type MmStruct, type Vma } from './vma.ts';

/** Faults of one page before the model calls it a livelock, as userAccess does. */
const MAX_FAULTS = 16;

/**
 * The PFN mapped at `va` in `vma`, faulting it in as a user access would (handle_mm_fault under
 * mmap_lock, held by the caller) until an entry with the needed permission is there; -EFAULT when
 * the fault fails (SIGBUS, or a retry the caller cannot take). What the page walk of __get_user_pages
 * (follow_page_mask + faultin_page) does, and what fixup_user_fault + follow_pfnmap_start do for a
 * PFN map (vfio_iommu_type1.c, follow_fault_pfn).
 */
export function* faultin_pfn(k: Kernel, mm: MmStruct, vma: Vma, va: number, write: boolean): KGen<number> {
  for (let tries = 0; ; tries++) {
    yield ev('follow_page', '', 'r', undefined, [mm.ptWalk(va)]);
    const e = mm.pt.lookup(va);
    if (e && (!write || e.write)) return e.pfn + (va - e.va) / PAGE_SIZE;
    if (tries === MAX_FAULTS) {
      k.violation('no-deadlock', `pin of va 0x${va.toString(16)} kept faulting: livelock`);
      return -E.EFAULT;
    }
    const vmf = { vma, address: va, write, vmaLock: false };
    const r = yield* traced(k.sched, 'handle_mm_fault', [vmf], handle_mm_fault(k, vmf));
    if (r & VM_FAULT_SIGBUS || r & VM_FAULT_RETRY) return -E.EFAULT;
  }
}

/**
 * check_vma_flags for a pin: no VMA, VM_IO | VM_PFNMAP, or a protection the pin needs and the VMA
 * lacks is -EFAULT. Returns the VMA, or null for -EFAULT.
 */
export function pinnableVma(mm: MmStruct, va: number, write: boolean): Vma | null {
  const vma = mm.find_vma(va);
  if (!vma || vma.flags.pfnmap || (write ? !vma.flags.write : !vma.flags.read)) return null;
  return vma;
}

/**
 * pin_user_pages_fast: the PFNs of `npages` pages from `start` (page-aligned), faulting them in;
 * -EFAULT for a hole, a VM_IO/VM_PFNMAP VMA, a write pin of a read-only VMA, or a fault that fails.
 * Pinned pages stay with their users: the model never frees RAM, so a later munmap leaves them.
 */
export function* pin_user_pages(k: Kernel, mm: MmStruct, start: number, npages: number, write: boolean): KGen<number[] | number> {
  const pfns: number[] = [];
  yield* mm.mmap_lock.down_read();
  let err = 0;
  for (let i = 0; i < npages && !err; i++) {
    const va = start + i * PAGE_SIZE;
    const vma = pinnableVma(mm, va, write);
    const pfn = vma ? yield* faultin_pfn(k, mm, vma, va, write) : -E.EFAULT;
    if (pfn < 0) err = pfn;
    else pfns.push(pfn);
  }
  yield* mm.mmap_lock.up_read();
  return err || pfns;
}
