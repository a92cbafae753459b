// mm/mmap.c and friends: mmap, munmap (with VMA splitting), and the VMA half of fork.
import type { Kernel } from '../kernel.ts';
import type { Process } from '../process.ts';
import { ev, type KGen } from '../sched/sched.ts';
import { fput, get_file, type File } from '../fs/file.ts';
import type { MmStruct, Vma } from './vma.ts';
import { E } from '../../uapi/errno.ts';
import { mmu_notifier_invalidate_range_end, mmu_notifier_invalidate_range_start } from './mmu_notifier.ts';
import {
  MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_PRIVATE, MAP_SHARED, MAP_SHARED_VALIDATE, MAP_TYPE, PAGE_SIZE, PROT_EXEC, PROT_READ,
  PROT_WRITE, TASK_SIZE,
} from '../../uapi/mman.ts';

const KNOWN_FLAGS = MAP_TYPE | MAP_FIXED | MAP_FIXED_NOREPLACE | MAP_ANONYMOUS;
/** The file offset in pages must fit an unsigned long with the length added (checked as Linux does). */
const MAX_PGOFF = 2 ** 52;

function linkFile(v: Vma): void {
  v.vm_file?.f_mapping.i_mmap.add(v);
}
function unlinkFile(v: Vma): void {
  v.vm_file?.f_mapping.i_mmap.delete(v);
}

/** ksys_mmap_pgoff → do_mmap → mmap_region, with their argument checks in the kernel's order. */
export function* sys_mmap(k: Kernel, p: Process, addr: number, len: number, prot: number, flags: number, fd: number, off: number): KGen<number> {
  if (off % PAGE_SIZE !== 0) return -E.EINVAL;
  if (len === 0) return -E.EINVAL;
  len = Math.ceil(len / PAGE_SIZE) * PAGE_SIZE;
  if (len > TASK_SIZE) return -E.ENOMEM;
  const pgoff = off / PAGE_SIZE;
  if (pgoff + len / PAGE_SIZE > MAX_PGOFF) return -E.EOVERFLOW;
  if (flags & ~KNOWN_FLAGS) return -E.EINVAL;
  const type = flags & MAP_TYPE;
  if (type !== MAP_SHARED && type !== MAP_PRIVATE && type !== MAP_SHARED_VALIDATE) return -E.EINVAL;
  const shared = type !== MAP_PRIVATE;
  const fixed = !!(flags & (MAP_FIXED | MAP_FIXED_NOREPLACE));
  if (fixed && addr % PAGE_SIZE !== 0) return -E.EINVAL;

  if (flags & MAP_ANONYMOUS) return yield* mmapAnonymous(k, p, addr, len, prot, shared, fixed, !!(flags & MAP_FIXED_NOREPLACE));
  const f = yield* p.files.fget(k, fd);
  if (typeof f === 'number') return f;
  try {
    if (!f.readable) return -E.EACCES;
    if (shared && prot & PROT_WRITE && !f.writable) return -E.EACCES;
    if (!f.ops.mmap) return -E.ENODEV;
    const mm = p.mm;
    yield* mm.mmap_lock.down_write();
    try {
      let va: number;
      if (fixed) {
        if (addr + len > TASK_SIZE || addr < PAGE_SIZE) return -E.ENOMEM;
        if (flags & MAP_FIXED_NOREPLACE) {
          if (mm.overlapping(addr, addr + len).length) return -E.EEXIST;
        } else yield* do_vmi_munmap(k, mm, addr, len);
        va = addr;
      } else if (addr && addr % PAGE_SIZE === 0 && mm.isFree(addr, addr + len)) {
        va = addr;
      } else {
        const a = mm.get_unmapped_area(len, off);
        if (a === null) return -E.ENOMEM;
        va = a;
      }
      const vma = mm.newVma(va, va + len, pgoff, f, {
        read: !!(prot & PROT_READ), write: !!(prot & PROT_WRITE), exec: !!(prot & PROT_EXEC), shared,
        mayWrite: f.writable, pfnmap: false,
      });
      yield* get_file(k, f); // the VMA's reference
      const r = yield* f.ops.mmap(k, f, vma);
      if (r < 0) {
        yield* fput(k, vma.vm_file!); // ->mmap may have swapped the file; put what the VMA holds now
        return r;
      }
      // vma_link: the VMA joins the mm and the i_mmap of the file it has *now* (a DMABUF's, if
      // ->mmap swapped it), which is why zapping the device inode can no longer reach it.
      yield ev('vma_link', mm.vmasKey, 'w', [{ obj: `${vma.vm_file!.f_mapping.name}.i_mmap`, acc: 'w' }]);
      mm.insert(vma);
      linkFile(vma);
      return va;
    } finally {
      yield* mm.mmap_lock.up_write();
    }
  } finally {
    yield* fput(k, f);
  }
}

/** An anonymous mapping (user buffers): no file, RAM pages on first touch. */
function* mmapAnonymous(k: Kernel, p: Process, addr: number, len: number, prot: number, shared: boolean, fixed: boolean, noreplace: boolean): KGen<number> {
  const mm = p.mm;
  yield* mm.mmap_lock.down_write();
  let va = addr;
  if (fixed) {
    if (addr + len > TASK_SIZE || addr < PAGE_SIZE) va = -E.ENOMEM;
    else if (noreplace && mm.overlapping(addr, addr + len).length) va = -E.EEXIST;
    else if (!noreplace) yield* do_vmi_munmap(k, mm, addr, len);
  } else if (!(addr && addr % PAGE_SIZE === 0 && mm.isFree(addr, addr + len))) va = mm.get_unmapped_area(len, 0) ?? -E.ENOMEM;
  if (va >= 0) {
    const vma = mm.newVma(va, va + len, va / PAGE_SIZE, null, { read: !!(prot & PROT_READ), write: !!(prot & PROT_WRITE), exec: !!(prot & PROT_EXEC), shared, mayWrite: true, pfnmap: false });
    vma.vm_ops = k.anonVmOps;
    yield ev('vma_link', mm.vmasKey);
    mm.insert(vma);
  }
  yield* mm.mmap_lock.up_write();
  return va;
}

export function* sys_munmap(k: Kernel, p: Process, addr: number, len: number): KGen<number> {
  if (addr % PAGE_SIZE !== 0 || len === 0 || addr + len > TASK_SIZE) return -E.EINVAL;
  len = Math.ceil(len / PAGE_SIZE) * PAGE_SIZE;
  const mm = p.mm;
  yield* mm.mmap_lock.down_write();
  yield* do_vmi_munmap(k, mm, addr, len);
  yield* mm.mmap_lock.up_write();
  return 0;
}

/**
 * Split VMAs at the edges, zap the page tables of [start, start+len), unlink and free the VMAs.
 * Caller holds mmap_lock for write. Each VMA is write-locked first, which waits for faults running
 * under its per-VMA lock.
 */
export function* do_vmi_munmap(k: Kernel, mm: MmStruct, start: number, len: number): KGen {
  const end = start + len;
  const hit = mm.overlapping(start, end);
  if (!hit.length) return;
  for (const v of hit) yield* v.vm_lock.down_write();
  const doomed: Vma[] = [];
  const survivors: Vma[] = [];
  for (const v of hit) {
    let cur = v;
    if (cur.vm_start < start) {
      yield* split_vma(k, mm, cur, start);
      survivors.push(cur);
      cur = mm.find_vma(start)!;
    }
    if (cur.vm_end > end) {
      yield* split_vma(k, mm, cur, end);
      survivors.push(mm.find_vma(end)!);
    }
    doomed.push(cur);
  }
  // unmap_vmas: the MMU notifier over the VMAs' span first, then the primary entries; the span is
  // the doomed VMAs', split to [start, end) by now (the VMAs hit before the splits end at `start`)
  const lo = doomed[0].vm_start, hi = doomed[doomed.length - 1].vm_end;
  const range = yield* mmu_notifier_invalidate_range_start(mm, lo, hi, 'MMU_NOTIFY_UNMAP');
  // the page-table objects touched are those under the VMAs, not the whole (maybe 128 TiB) range
  yield ev('unmap_region', mm.vmasKey, 'w', undefined, doomed.flatMap((v) => mm.ptRange(v.vm_start, v.vm_end, 'w')));
  mm.pt.zapRange(start, end);
  yield* mmu_notifier_invalidate_range_end(range);
  for (const v of doomed) {
    mm.remove(v);
    unlinkFile(v);
  }
  mm.pt.freeTables(start, end, (a, b) => mm.overlapping(a, b).length > 0);
  k.note(`munmap mm${mm.id} [0x${start.toString(16)}, 0x${end.toString(16)})`);
  for (const v of doomed) {
    if (v.vm_ops?.close) yield* v.vm_ops.close(v);
    if (v.vm_file) yield* fput(k, v.vm_file);
  }
  for (const v of hit) if (v.vm_lock.heldBy(k.sched.cur(), 'w')) yield* v.vm_lock.up_write();
}

/**
 * __split_vma: `v` keeps [vm_start, at) and a new VMA takes [at, vm_end) with vm_pgoff advanced by
 * the pages it moved: the arithmetic find_pfn must get right after a split.
 */
export function* split_vma(k: Kernel, mm: MmStruct, v: Vma, at: number): KGen {
  const n = mm.newVma(at, v.vm_end, v.vm_pgoff + (at - v.vm_start) / PAGE_SIZE, v.vm_file, { ...v.flags });
  n.vm_ops = v.vm_ops;
  n.vm_private_data = v.vm_private_data;
  n.cache = v.cache;
  if (v.vm_file) yield* get_file(k, v.vm_file);
  // vma_adjust_trans_huge (mm/huge_memory.c): a PMD or PUD leaf across the new boundary is split
  // before the VMAs change, in the same mmap_lock(write) section; a special (PFN) huge leaf splits
  // by being cleared, to refault at the smaller order
  const straddle = mm.pt.lookup(at);
  const split = straddle && straddle.order > 0 && straddle.va < at ? straddle : null;
  // __split_huge_pmd / __split_huge_pud notify the secondary MMUs over the huge leaf's span
  const range = split ? yield* mmu_notifier_invalidate_range_start(mm, split.va, split.va + PAGE_SIZE * 2 ** split.order, 'MMU_NOTIFY_CLEAR') : null;
  yield ev('vma_split', mm.vmasKey, 'w', v.vm_file ? [{ obj: `${v.vm_file.f_mapping.name}.i_mmap`, acc: 'w' }] : undefined, split ? mm.ptRange(at - 1, at + 1, 'w') : undefined);
  if (split) {
    mm.pt.zapRange(split.va, split.va + PAGE_SIZE * 2 ** split.order);
    k.note(`split huge leaf order ${split.order} va 0x${split.va.toString(16)} (mm${mm.id}): cleared`);
  }
  yield* mmu_notifier_invalidate_range_end(range);
  v.vm_end = at;
  mm.insert(n);
  linkFile(n);
  if (n.vm_ops?.open) yield* n.vm_ops.open(n);
}

/** dup_mmap: copy every VMA (sharing its file) and, for PFN maps, the page-table entries. */
export function* dup_mmap(k: Kernel, src: MmStruct, dst: MmStruct): KGen {
  yield* src.mmap_lock.down_write();
  for (const v of src.vmas) {
    const n = dst.newVma(v.vm_start, v.vm_end, v.vm_pgoff, v.vm_file, { ...v.flags });
    n.vm_ops = v.vm_ops;
    n.vm_private_data = v.vm_private_data;
    n.cache = v.cache;
    if (v.vm_file) yield* get_file(k, v.vm_file);
    yield ev('dup_vma', dst.vmasKey, 'w', [{ obj: 'ram.alloc', acc: 'w' }, ...(v.vm_file ? [{ obj: `${v.vm_file.f_mapping.name}.i_mmap`, acc: 'w' as const }] : [])], [...src.ptRange(v.vm_start, v.vm_end, 'r'), ...dst.ptRange(v.vm_start, v.vm_end, 'w')]);
    dst.insert(n);
    linkFile(n);
    if (n.vm_ops?.open) yield* n.vm_ops.open(n);
    // copy_page_range: VM_PFNMAP entries cannot be refaulted from a page cache, so they are copied
    if (v.flags.pfnmap) src.pt.copyRange(dst.pt, v.vm_start, v.vm_end);
    else if (!v.vm_file) {
      // anonymous memory: the child gets its own copy of every page (what COW ends in)
      n.anon_vma = v.anon_vma;
      for (const e of src.pt.entries(v.vm_start, v.vm_end)) {
        const pfn = k.pci.allocRamPage();
        for (let o = 0; o < PAGE_SIZE; o += 8) k.pci.mem.write(pfn * PAGE_SIZE + o, 8, k.pci.mem.read(e.pfn * PAGE_SIZE + o, 8));
        dst.pt.insertPte(e.va, { pfn, write: e.write, cache: e.cache });
      }
    }
  }
  yield* src.mmap_lock.up_write();
}

/** exit_mmap: unmap everything. */
export function* exit_mmap(k: Kernel, mm: MmStruct): KGen {
  yield* mm.mmap_lock.down_write();
  yield* do_vmi_munmap(k, mm, 0, TASK_SIZE);
  yield* mm.mmap_lock.up_write();
}

export type { File };
