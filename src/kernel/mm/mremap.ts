// mm/mremap.c, in place: shrinking unmaps the tail; growing a VM_DONTEXPAND / VM_PFNMAP VMA (every
// BAR mapping) is -EFAULT (vma_to_resize); an anonymous VMA grows in place when the pages after it
// are free. Moving a mapping (MREMAP_MAYMOVE to a new place) is not modelled: -ENOMEM.
import type { Kernel } from '../kernel.ts';
import type { Process } from '../process.ts';
import { ev, type KGen } from '../sched/sched.ts';
import { do_vmi_munmap } from './mmap.ts';
import { E } from '../../uapi/errno.ts';
import { PAGE_SIZE, TASK_SIZE } from '../../uapi/mman.ts';

export const MREMAP_MAYMOVE = 1, MREMAP_FIXED = 2, MREMAP_DONTUNMAP = 4;

export function* sys_mremap(k: Kernel, p: Process, addr: number, oldLen: number, newLen: number, flags: number): KGen<number> {
  if (flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP)) return -E.EINVAL;
  if (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP) && !(flags & MREMAP_MAYMOVE)) return -E.EINVAL;
  if (addr % PAGE_SIZE !== 0) return -E.EINVAL;
  oldLen = Math.ceil(oldLen / PAGE_SIZE) * PAGE_SIZE;
  newLen = Math.ceil(newLen / PAGE_SIZE) * PAGE_SIZE;
  if (!newLen) return -E.EINVAL;
  if (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) return -E.EINVAL; // moves are not modelled
  const mm = p.mm;
  yield* mm.mmap_lock.down_write();
  try {
    if (newLen <= oldLen) {
      if (newLen < oldLen) yield* do_vmi_munmap(k, mm, addr + newLen, oldLen - newLen);
      return addr;
    }
    // vma_to_resize
    const v = mm.find_vma(addr);
    if (!v || addr < v.vm_start) return -E.EFAULT;
    if (v.flags.pfnmap) return -E.EFAULT;
    if (oldLen > v.vm_end - addr) return -E.EFAULT;
    const end = addr + newLen;
    if (addr + oldLen !== v.vm_end || end > TASK_SIZE || mm.overlapping(v.vm_end, end).length) return -E.ENOMEM;
    yield ev('vma_expand', mm.vmasKey, 'w');
    v.vm_end = end;
    return addr;
  } finally {
    yield* mm.mmap_lock.up_write();
  }
}
