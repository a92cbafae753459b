// drivers/vfio/pci/nvgrace-gpu: a vfio-pci variant driver that overrides .mmap and .read for its
// device-memory region. The series leaves its mmap alone (v4 cover letter): its mappings stay
// on the device inode, so revocation reaches them only through the inode zap, which is why patch 07
// sets zap_bars_on_revoke for drivers that override .mmap. Its read path holds memory_lock for read
// across copy_to_user, the half of the v5 deadlock (opsound/vfio-dmabuf-lab README) that is not VFIO's.
import type { Kernel } from '../../kernel.ts';
import type { File, UserBuf } from '../../fs/file.ts';
import type { Vma } from '../../mm/vma.ts';
import { copy_to_user } from '../../mm/memory.ts';
import { ev, type KGen } from '../../sched/sched.ts';
import type { VfioDeviceOps } from '../vfio_main.ts';
import type { VfioPciCoreDevice } from './core.ts';
import { E } from '../../../uapi/errno.ts';
import { PAGE_SIZE } from '../../../uapi/mman.ts';
import { VFIO_PCI_OFFSET_SHIFT } from '../../../uapi/vfio.ts';

/** The region nvgrace-gpu emulates as a BAR over the device memory ("usemem"). */
export const NVGRACE_USEMEM_BAR = 2;
const PGOFF_INDEX_SHIFT = 2 ** (VFIO_PCI_OFFSET_SHIFT - 12);

export function nvgraceOps(k: Kernel, vdev: VfioPciCoreDevice, core: VfioDeviceOps): VfioDeviceOps {
  // vfio_pci_core_register_device: .mmap is overridden, so revocation must also zap the inode
  vdev.zap_bars_on_revoke = !k.mut('M15');
  return {
    ...core,
    *mmap(k: Kernel, file: File, vma: Vma): KGen<number> {
      const index = Math.floor(vma.vm_pgoff / PGOFF_INDEX_SHIFT);
      if (index !== NVGRACE_USEMEM_BAR) return yield* core.mmap(k, file, vma);
      const bar = vdev.pdev.bar(index);
      if (!vma.flags.shared || !bar) return -E.EINVAL;
      const start = (vma.vm_pgoff % PGOFF_INDEX_SHIFT) * PAGE_SIZE;
      if (start + (vma.vm_end - vma.vm_start) > bar.size) return -E.EINVAL;
      // the VMA keeps the device file: it is on the device inode's i_mmap, not a DMABUF's
      vma.vm_private_data = vdev;
      vma.flags.pfnmap = true;
      vma.vm_ops = k.legacyMmapOps;
      return 0;
    },
    *read(k: Kernel, buf: Uint8Array, off: number, user?: UserBuf): KGen<number> {
      const index = Math.floor(off / 2 ** VFIO_PCI_OFFSET_SHIFT);
      if (index !== NVGRACE_USEMEM_BAR) return yield* core.read(k, buf, off, user);
      const bar = vdev.pdev.bar(index)!;
      const pos = off % 2 ** VFIO_PCI_OFFSET_SHIFT;
      if (pos >= bar.size) return -E.EINVAL;
      const count = Math.min(buf.length, bar.size - pos);
      // nvgrace_gpu_read_mem: memory_lock(read) held across the copy to user space
      yield* vdev.memory_lock.down_read();
      let r = count;
      if (!vdev.memoryEnabled()) r = -E.EIO;
      else {
        const a = k.pci.accessEv(bar.start + pos, count, false);
        yield ev('memremap_read', '', 'r', a.also, a.spans);
        for (let i = 0; i < count; i++) buf[i] = Number(k.pci.cpuAccess(bar.start + pos + i, 1, false, 0n, `nvgrace read ${vdev.name}`));
        if (user) {
          const c = yield* copy_to_user(k, user, buf.subarray(0, count));
          if (c < 0) r = c;
        }
      }
      yield* vdev.memory_lock.up_read();
      return r;
    },
  };
}
