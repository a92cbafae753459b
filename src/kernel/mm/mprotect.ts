// mm/mprotect.c: change the protection of whole pages of a mapped range, splitting VMAs at its
// edges; present entries follow (change_protection): without PROT_WRITE a store faults and fails the
// VMA check (SIGSEGV, SEGV_ACCERR) without reaching the driver, and with it back they are writable
// again at once (observed on 6.12: no fault). Anonymous private memory is treated the same (the
// model has no copy-on-write).
import type { Kernel } from '../kernel.ts';
import type { Process } from '../process.ts';
import { ev, type KGen } from '../sched/sched.ts';
import { split_vma } from './mmap.ts';
import { mmu_notifier_invalidate_range_end, mmu_notifier_invalidate_range_start } from './mmu_notifier.ts';
import { E } from '../../uapi/errno.ts';
import { PAGE_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE, TASK_SIZE } from '../../uapi/mman.ts';

export function* sys_mprotect(k: Kernel, p: Process, start: number, len: number, prot: number): KGen<number> {
  if (start % PAGE_SIZE !== 0) return -E.EINVAL;
  if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)) return -E.EINVAL;
  len = Math.ceil(len / PAGE_SIZE) * PAGE_SIZE;
  const end = start + len;
  if (end < start || end > TASK_SIZE) return -E.ENOMEM;
  if (len === 0) return 0;
  const mm = p.mm;
  yield* mm.mmap_lock.down_write();
  try {
    // the whole range must be mapped, with no hole (ENOMEM), and a shared mapping may only gain
    // PROT_WRITE if its file was opened for writing (EACCES)
    const hit = mm.overlapping(start, end);
    let at = start;
    for (const v of hit) {
      if (v.vm_start > at) return -E.ENOMEM;
      if (prot & PROT_WRITE && v.flags.shared && !v.flags.mayWrite) return -E.EACCES;
      at = v.vm_end;
    }
    if (!hit.length || at < end) return -E.ENOMEM;
    for (const v of hit) yield* v.vm_lock.down_write();
    for (const v of hit) {
      if (v.vm_start < start) yield* split_vma(k, mm, v, start);
      const cur = mm.find_vma(Math.max(start, v.vm_start))!;
      if (cur.vm_end > end) yield* split_vma(k, mm, cur, end);
    }
    // change_protection notifies the secondary MMUs (MMU_NOTIFY_PROTECTION_VMA) around its walk
    const range = yield* mmu_notifier_invalidate_range_start(mm, start, end, 'MMU_NOTIFY_PROTECTION_VMA');
    yield ev('change_protection', mm.vmasKey, 'w', undefined, mm.ptRange(start, end, 'w'));
    for (const v of mm.overlapping(start, end)) v.flags = { ...v.flags, read: !!(prot & PROT_READ), write: !!(prot & PROT_WRITE), exec: !!(prot & PROT_EXEC) };
    mm.pt.protectRange(start, end, !!(prot & PROT_WRITE));
    yield* mmu_notifier_invalidate_range_end(range);
    for (const v of hit) if (v.vm_lock.heldBy(k.sched.cur(), 'w')) yield* v.vm_lock.up_write();
    k.note(`mprotect mm${mm.id} [0x${start.toString(16)}, 0x${end.toString(16)}) ${prot & PROT_READ ? 'r' : '-'}${prot & PROT_WRITE ? 'w' : '-'}${prot & PROT_EXEC ? 'x' : '-'}`);
    return 0;
  } finally {
    yield* mm.mmap_lock.up_write();
  }
}
