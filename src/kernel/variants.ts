// The kernels vfio-sim models. Shared code stays shared; each difference is a named switch, with the
// patch or kernel function it comes from.
export interface KernelVariant {
  name: string;
  description: string;
  /** the mainline release the kernel is built on */
  base: string;
  /** when the series version was posted (absent: a mainline release or a named fix) */
  posted?: string;
  /**
   * series patch 05: every BAR mmap goes through a single-range DMABUF (vfio_pci_core_mmap() ->
   * vfio_pci_core_mmap_prep_dmabuf(), [PATCH v4 05/10] vfio/pci: Convert BAR mmap() to use a DMABUF)
   */
  barMmapViaDmabuf: boolean;
  /**
   * Before the series every revoke zapped the device inode first
   * (vfio_pci_zap_and_down_write_memory_lock, drivers/vfio/pci/vfio_pci_core.c and
   * vfio_pci_config.c); the series zaps only through DMABUFs unless zap_bars_on_revoke.
   */
  inodeZapFirst: boolean;
  /**
   * The DMABUF zap of set_status covers file offsets [0, size) in v4 (vfio_pci_dma_buf_set_status(),
   * docs/zap-range-finding.md); the later code zaps the whole file (length 0).
   */
  dmabufZapWholeFile: boolean;
  /** mm: faults first under the per-VMA lock, retried under mmap_lock (seen on 6.12) */
  perVmaLock: boolean;
  /**
   * series patch 08: VFIO's dma_buf_ops have .mmap, so an exported DMABUF fd can be mmap()ed
   * (vfio_pci_dma_buf_mmap(), [PATCH v4 08/10] vfio/pci: Support mmap() of a VFIO DMABUF). Before the
   * series there is no .mmap and dma_buf_mmap_internal() (drivers/dma-buf/dma-buf.c) returns -EINVAL.
   */
  dmabufMmap: boolean;
  /**
   * series patch 09: VFIO_DEVICE_FEATURE_DMA_BUF_REVOKE (13) exists ([PATCH v4 09/10] vfio/pci:
   * Permanently revoke a DMABUF on request). Before the series it is an unknown feature:
   * vfio_pci_core_ioctl_feature() returns -ENOTTY (drivers/vfio/pci/vfio_pci_core.c).
   */
  featureDmaBufRevoke: boolean;
  /**
   * series patch 10: VFIO_DEVICE_FEATURE_DMA_BUF_MEMATTR (14) exists ([PATCH v4 10/10] vfio/pci: Add
   * mmap() attributes to DMABUF feature); before the series, unknown feature → -ENOTTY
   * (vfio_pci_core_ioctl_feature()).
   */
  featureDmaBufMemattr: boolean;
  /**
   * The locking of v6 on, after the v5 deadlock with nvgrace-gpu (export waited for memory_lock under
   * mmap_lock while a read held it): a `dmabuf_lock` rwsem, ordered memory_lock -> dmabuf_lock ->
   * resv, guards the device's buffer list and a shadow `bars_revoked` flag. The export takes it (for
   * write) instead of memory_lock and starts the buffer from the shadow flag; dma_buf_move and
   * set_status run under it (write); the fault handler re-checks the status under memory_lock(read)
   * then dmabuf_lock(read); the REVOKE feature takes memory_lock for read, then dmabuf_lock for write;
   * release takes it around list_del. v4 and v5 take memory_lock for write in export and release.
   */
  dmabufLock: boolean;
  /**
   * find_pfn of v6 on: a BAR-mmap buffer's adjust is the whole vm_pgoff (region index included), so
   * no mask is applied; a huge page that does not fit returns -ERANGE (v4: -EAGAIN), either way
   * VM_FAULT_FALLBACK; an order-0 miss is -EFAULT (SIGBUS) as before.
   */
  findPfnErange: boolean;
  /**
   * v6 on: without CONFIG_VFIO_PCI_DMABUF the buffer ops still have an .attach, which always returns
   * -EOPNOTSUPP, so no importer attaches to a BAR-mmap buffer; v4 has no .attach then.
   */
  attachRefusedWithoutConfig: boolean;
  /**
   * The complete state of Matt Evans' line (v8): a BAR-mmap VMA keeps the VFIO device file (it stays on
   * the device inode's i_mmap, and /proc/PID/maps names the device), holds the buffer's file through
   * vm_ops .open/.close instead, and every revoke zaps the device inode (no zap_bars_on_revoke); a
   * BAR-mmap buffer cannot be mmap()ed through the DMABUF (-EINVAL); it has no name.
   */
  barVmaKeepsDeviceFile: boolean;
  /**
   * "dma-buf: Annul dmabuf->file on file release" (Message-ID
   * f8efaabd-c06e-4f04-8cfa-489c148e37ba@ozlabs.org), which v8 depends on: dma_buf_file_release sets
   * dmabuf->file to NULL, so a walk of the device's buffers (get_file_active(&priv->dmabuf->file) in
   * dma_buf_move and cleanup) skips a buffer whose file is gone while something (an O_PATH open of
   * /proc/PID/fd/N) still holds its dentry, and with it the dma_buf and its private data. Without it
   * the walk reads the freed file: KASAN's slab-use-after-free in get_file_active.
   */
  dmaBufAnnulFile: boolean;
  /**
   * Before the series, vfio_pci_dma_buf_move notifies importers (dma_buf_move_notify) of an un-revoke
   * as of a revoke; the series' set_status tells them only of a revoke.
   */
  unrevokeNotifies: boolean;
}

/** The series as posted; the other series kernels differ from it in the switches they name. */
const SERIES_V4: KernelVariant = {
  name: 'series-v4',
  description: '"vfio/pci: Add mmap() for DMABUFs" v4, as posted (Message-ID 20260701171245.90111-1-matt@ozlabs.org)',
  base: 'v7.1',
  posted: '2026-07-01',
  barMmapViaDmabuf: true,
  inodeZapFirst: false,
  dmabufZapWholeFile: false,
  perVmaLock: true,
  dmabufMmap: true,
  featureDmaBufRevoke: true,
  featureDmaBufMemattr: true,
  dmabufLock: false,
  findPfnErange: false,
  attachRefusedWithoutConfig: false,
  barVmaKeepsDeviceFile: false,
  dmaBufAnnulFile: false,
  unrevokeNotifies: false,
};

/**
 * v6 (on v7.2), Matt Evans' line as the lab copy of it shows (GitHub opsound/linux; docs/kernels.md
 * lists the commits): the dmabuf_lock locking and shadow state, the new find_pfn, the whole-file zap,
 * and no DMA_BUF_MEMATTR feature (an unknown feature: -ENOTTY). BAR VMAs still take the buffer's file.
 */
const SERIES_V6: KernelVariant = {
  ...SERIES_V4,
  name: 'series-v6',
  description: 'the series v6: dmabuf_lock (rwsem) and shadow revoked state, export without memory_lock, find_pfn with -ERANGE, whole-file zap, no MEMATTR',
  base: 'v7.2',
  posted: undefined,
  dmabufZapWholeFile: true,
  featureDmaBufMemattr: false,
  dmabufLock: true,
  findPfnErange: true,
  attachRefusedWithoutConfig: true,
};

export const KERNELS: Record<string, KernelVariant> = {
  'series-v4': SERIES_V4,
  /**
   * v4 with the smallest fix for the zap-range finding (docs/zap-range-finding.md): set_status zaps
   * the DMABUF's whole file (unmap_mapping_range(f_mapping, 0, 0, true): length 0 is "to the end of
   * the file", every pgoff), as the later lab code of the series does (opsound/linux 0bdee75e7b0c).
   * A BAR-mmap VMA keeps its index-encoded vm_pgoff (index << 28 pages | BAR page offset, as
   * vfio_pci_core_mmap_prep_dmabuf() leaves it), which the [0, size) hole of v4 misses for BAR >= 1
   * and for BAR0 at a non-zero offset, so those PTEs survived memory disable, D3hot and reset. (The
   * later code's other change, the full-vm_pgoff adjust, is a refactor: v4's masked find_pfn
   * arithmetic already gives the right offsets, so it is not needed for the fix.)
   */
  'series-v4-fixed': {
    ...SERIES_V4,
    name: 'series-v4-fixed',
    description: 'series-v4 with the whole-file DMABUF zap (length 0) of the later code: the zap-range finding fixed',
    posted: undefined,
    dmabufZapWholeFile: true,
  },
  'series-v6': SERIES_V6,
  /**
   * v8 (on v7.3-rc6, 9 patches): the v6 locking and find_pfn, and the BAR VMA that keeps the device
   * file. The lab copy's complete state of the line (opsound/linux 65ff31fe); docs/kernels.md says
   * why that is read as v8 and what is uncertain.
   */
  'series-v8': {
    ...SERIES_V6,
    name: 'series-v8',
    description: 'the series v8 (Message-ID 20261006193643.76330-1-matt@ozlabs.org): v6 + BAR VMAs keep the VFIO device file and hold the DMABUF through vm_ops open/close; every revoke zaps the device inode',
    base: 'v7.3-rc6',
    posted: '2026-10-06',
    barVmaKeepsDeviceFile: true,
  },
  /** v8 with the dma-buf patch it depends on ("dma-buf: Annul dmabuf->file on file release"). */
  'series-v8+annul': {
    ...SERIES_V6,
    name: 'series-v8+annul',
    description: 'series-v8 with "dma-buf: Annul dmabuf->file on file release" (Message-ID f8efaabd-c06e-4f04-8cfa-489c148e37ba@ozlabs.org), which v8 depends on',
    base: 'v7.3-rc6',
    barVmaKeepsDeviceFile: true,
    dmaBufAnnulFile: true,
  },
  'v7.1': {
    name: 'v7.1',
    description: 'mainline before the series: BAR mmap with vm_private_data = vdev, revoke zaps the device inode',
    base: 'v7.1',
    barMmapViaDmabuf: false,
    inodeZapFirst: true,
    dmabufZapWholeFile: false,
    perVmaLock: true,
    dmabufMmap: false,
    featureDmaBufRevoke: false,
    featureDmaBufMemattr: false,
    dmabufLock: false,
    findPfnErange: false,
    attachRefusedWithoutConfig: false,
    barVmaKeepsDeviceFile: false,
    dmaBufAnnulFile: false,
    unrevokeNotifies: true,
  },
};
export const DEFAULT_KERNEL = 'series-v8';
