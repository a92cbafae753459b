// Anonymous memory, enough for user buffers: a fault allocates a zeroed RAM page. The first fault
// of a VMA that has no anon_vma yet cannot be handled under the per-VMA lock (vmf_anon_prepare
// answers VM_FAULT_RETRY), so it is retried under mmap_lock: the path by which a copy_to_user into a
// fresh buffer ends up waiting for mmap_lock.
import type { Kernel } from '../kernel.ts';
import { ev } from '../sched/sched.ts';
import { VM_FAULT_NOPAGE, VM_FAULT_RETRY, type VmOps } from './vma.ts';
import { insertSpans } from './memory.ts';
import { PAGE_SIZE } from '../../uapi/mman.ts';

export function anonVmOps(k: Kernel): VmOps {
  return {
    name: 'anonymous',
    map_pages: true,
    *fault(vmf) {
      const { vma } = vmf;
      if (!vma.anon_vma && vmf.vmaLock) {
        yield* vma.vm_lock.up_read();
        return VM_FAULT_RETRY;
      }
      vma.anon_vma = true;
      const mm = vma.mm;
      yield ev('do_anonymous_page', 'ram.alloc', 'w', undefined, insertSpans(mm, vmf.address, 0));
      const va = vmf.address - (vmf.address % PAGE_SIZE);
      if (mm.pt.insertPte(va, { pfn: k.pci.allocRamPage(), write: vma.flags.write, cache: 'UC' })) k.note(`anonymous page at va 0x${va.toString(16)} (mm${mm.id})`);
      return VM_FAULT_NOPAGE;
    },
  };
}
