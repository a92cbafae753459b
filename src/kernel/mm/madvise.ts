// mm/madvise.c, MADV_DONTNEED only: refused on a VM_PFNMAP VMA (can_madv_lru_vma), which is every
// BAR mapping; on anonymous memory it drops the pages (the next touch reads zeroes).
import type { Kernel } from '../kernel.ts';
import type { Process } from '../process.ts';
import type { KGen } from '../sched/sched.ts';
import { zapRange } from './memory.ts';
import { E } from '../../uapi/errno.ts';
import { PAGE_SIZE, TASK_SIZE } from '../../uapi/mman.ts';

export const MADV_DONTNEED = 4;

export function* sys_madvise(k: Kernel, p: Process, start: number, len: number, advice: number): KGen<number> {
  if (start % PAGE_SIZE !== 0) return -E.EINVAL;
  if (advice !== MADV_DONTNEED) return -E.EINVAL; // the only advice the model knows
  len = Math.ceil(len / PAGE_SIZE) * PAGE_SIZE;
  const end = start + len;
  if (end < start || end > TASK_SIZE) return -E.EINVAL;
  if (len === 0) return 0;
  const mm = p.mm;
  yield* mm.mmap_lock.down_read();
  try {
    const hit = mm.overlapping(start, end);
    if (hit.some((v) => v.flags.pfnmap)) return -E.EINVAL;
    yield* zapRange(mm, start, end);
    // a hole in the range is -ENOMEM after the mapped parts were advised, as madvise_walk_vmas does
    let at = start;
    for (const v of hit) {
      if (v.vm_start > at) return -E.ENOMEM;
      at = v.vm_end;
    }
    return at < end ? -E.ENOMEM : 0;
  } finally {
    yield* mm.mmap_lock.up_read();
  }
}
