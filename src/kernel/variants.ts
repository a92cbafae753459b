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
  /**
   * series patch 08: VFIO's dma_buf_ops have .mmap, so an exported DMABUF fd can be mmap()ed
   * (spec/series.md §3.4, §6.2). Before the series there is no .mmap and dma_buf_mmap_internal returns
   * -EINVAL (spec/mainline.md §3.3, §4.5).
   */
  dmabufMmap: boolean;
  /**
   * series patch 09: VFIO_DEVICE_FEATURE_DMA_BUF_REVOKE (13) exists (spec/series.md §6.3). Before the
   * series it is an unknown feature: vfio_pci_core_ioctl_feature returns -ENOTTY (spec/mainline.md §3.2).
   */
  featureDmaBufRevoke: boolean;
  /**
   * series patch 10: VFIO_DEVICE_FEATURE_DMA_BUF_MEMATTR (14) exists (spec/series.md §6.4); before the
   * series, unknown feature → -ENOTTY (spec/mainline.md §3.2).
   */
  featureDmaBufMemattr: boolean;
  /**
   * Which lock the DMABUF export and list take: v4 (and v5) take memory_lock for write, under the
   * mmap_lock mmap() holds (spec/series.md §3.3 step 4); v6 took a dmabuf_lock with a shadow
   * bars_revoked state instead, after the v5 deadlock (§1.4, §9.6 item 30). Absent: memory_lock.
   */
  exportLock?: 'memory_lock' | 'dmabuf_lock';
}

/** The series as posted; the other series kernels differ from it in the switches they name. */
const SERIES_V4: KernelVariant = {
  name: 'series-v4',
  description: 'v7.1 + "vfio/pci: Add mmap() for DMABUFs" v4 (2026-07-01), as posted',
  barMmapViaDmabuf: true,
  inodeZapFirst: false,
  dmabufZapWholeFile: false,
  perVmaLock: true,
  dmabufMmap: true,
  featureDmaBufRevoke: true,
  featureDmaBufMemattr: true,
};

export const KERNELS: Record<string, KernelVariant> = {
  'series-v4': SERIES_V4,
  /**
   * v4 with the smallest fix for spec/series.md §9.7 item 33 (zap range, §5.4): set_status zaps the
   * DMABUF's whole file (unmap_mapping_range(f_mapping, 0, 0, true): length 0 is "to the end of the
   * file", every pgoff), as the later lab code of the series does (opsound/linux 0bdee75e7b0c, quoted
   * in §5.4). A BAR-mmap VMA keeps its index-encoded vm_pgoff (index << 28 pages | BAR page offset,
   * §3.2), which the [0, size) hole of v4 misses for BAR >= 1 and for BAR0 at a non-zero offset, so
   * those PTEs survived memory disable, D3hot and reset. (The later code's other change, the
   * full-vm_pgoff adjust, is a refactor: v4's masked find_pfn arithmetic already gives the right
   * offsets, so it is not needed for the fix.)
   */
  'series-v4-fixed': {
    ...SERIES_V4,
    name: 'series-v4-fixed',
    description: 'series-v4 with the whole-file DMABUF zap (length 0) of the later code: §9.7 item 33 fixed',
    dmabufZapWholeFile: true,
  },
  /** v4 with v6's export locking (spec/series.md §1.4): the fix for the v5 deadlock. */
  'series-v4-dmabuf-lock': {
    ...SERIES_V4,
    name: 'series-v4-dmabuf-lock',
    description: 'series-v4 with the v6 export locking (dmabuf_lock + bars_revoked, no memory_lock under mmap_lock)',
    exportLock: 'dmabuf_lock',
  },
  'v7.1': {
    name: 'v7.1',
    description: 'mainline before the series: BAR mmap with vm_private_data = vdev, revoke zaps the device inode',
    barMmapViaDmabuf: false,
    inodeZapFirst: true,
    dmabufZapWholeFile: false,
    perVmaLock: true,
    dmabufMmap: false,
    featureDmaBufRevoke: false,
    featureDmaBufMemattr: false,
  },
};
export const DEFAULT_KERNEL = 'series-v4';
