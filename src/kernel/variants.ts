// The kernels vfio-sim models. Shared code stays shared; each difference is a named switch, with the
// spec section it comes from.
export interface KernelVariant {
  name: string;
  description: string;
  /** series patch 05: every BAR mmap goes through a single-range DMABUF (spec/series.md §3.1-3.2) */
  barMmapViaDmabuf: boolean;
  /**
   * Before the series every revoke zapped the device inode first (vfio_pci_zap_and_down_write_memory_lock,
   * spec/mainline.md §2.3-2.5); the series zaps only through DMABUFs unless zap_bars_on_revoke.
   */
  inodeZapFirst: boolean;
  /**
   * The DMABUF zap of set_status covers file offsets [0, size) in v4 (spec/series.md §5.4 and §9.7
   * item 33); the later code zaps the whole file (length 0).
   */
  dmabufZapWholeFile: boolean;
  /** mm: faults first under the per-VMA lock, retried under mmap_lock (seen on 6.12) */
  perVmaLock: boolean;
}

export const KERNELS: Record<string, KernelVariant> = {
  'series-v4': {
    name: 'series-v4',
    description: 'v7.1 + "vfio/pci: Add mmap() for DMABUFs" v4 (2026-07-01), as posted',
    barMmapViaDmabuf: true,
    inodeZapFirst: false,
    dmabufZapWholeFile: false,
    perVmaLock: true,
  },
  'v7.1': {
    name: 'v7.1',
    description: 'mainline before the series: BAR mmap with vm_private_data = vdev, revoke zaps the device inode',
    barMmapViaDmabuf: false,
    inodeZapFirst: true,
    dmabufZapWholeFile: false,
    perVmaLock: true,
  },
};
export const DEFAULT_KERNEL = 'series-v4';
