// <uapi/linux/vfio.h>: ioctl numbers, flags, region indexes and struct layouts (x86-64), including the
// DMABUF features of the "vfio/pci: Add mmap() for DMABUFs" series (REVOKE = 13, MEMATTR = 14).
import { _IO } from './ioctl.ts';
import { cstruct } from './struct.ts';

export const VFIO_API_VERSION = 0;
export const VFIO_TYPE = ';'.charCodeAt(0); // 0x3b
export const VFIO_BASE = 100;
const vio = (n: number) => _IO(VFIO_TYPE, VFIO_BASE + n);

export const IOCTLS = {
  VFIO_GET_API_VERSION: vio(0),
  VFIO_CHECK_EXTENSION: vio(1),
  VFIO_SET_IOMMU: vio(2),
  VFIO_GROUP_GET_STATUS: vio(3),
  VFIO_GROUP_SET_CONTAINER: vio(4),
  VFIO_GROUP_UNSET_CONTAINER: vio(5),
  VFIO_GROUP_GET_DEVICE_FD: vio(6),
  VFIO_DEVICE_GET_INFO: vio(7),
  VFIO_DEVICE_GET_REGION_INFO: vio(8),
  VFIO_DEVICE_GET_IRQ_INFO: vio(9),
  VFIO_DEVICE_SET_IRQS: vio(10),
  VFIO_DEVICE_RESET: vio(11),
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: vio(12),
  VFIO_DEVICE_PCI_HOT_RESET: vio(13),
  VFIO_DEVICE_IOEVENTFD: vio(16),
  VFIO_DEVICE_FEATURE: vio(17),
  VFIO_DEVICE_BIND_IOMMUFD: vio(18),
  VFIO_DEVICE_ATTACH_IOMMUFD_PT: vio(19),
  VFIO_DEVICE_DETACH_IOMMUFD_PT: vio(20),
} as const;
export type IoctlName = keyof typeof IOCTLS;
/**
 * The container's (/dev/vfio/vfio) IOMMU-driver ioctls, which reuse device ioctl numbers (the fd
 * type tells them apart): VFIO_IOMMU_GET_INFO is BASE + 12 like GET_PCI_HOT_RESET_INFO, MAP_DMA
 * BASE + 13 like PCI_HOT_RESET, DIRTY_PAGES BASE + 17 like DEVICE_FEATURE.
 */
export const CONTAINER_IOCTLS = {
  VFIO_IOMMU_GET_INFO: vio(12),
  VFIO_IOMMU_MAP_DMA: vio(13),
  VFIO_IOMMU_UNMAP_DMA: vio(14),
  VFIO_IOMMU_DIRTY_PAGES: vio(17),
} as const;
/** The ioctls whose argument is a number, not a pointer to a struct (VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU). */
export const VALUE_ARG_IOCTLS = new Set<number>([IOCTLS.VFIO_CHECK_EXTENSION, IOCTLS.VFIO_SET_IOMMU]);
export const IOCTL_NAME = new Map<number, IoctlName>(Object.entries(IOCTLS).map(([k, v]) => [v, k as IoctlName]));

export const VFIO_DEVICE_FLAGS_RESET = 1 << 0, VFIO_DEVICE_FLAGS_PCI = 1 << 1, VFIO_DEVICE_FLAGS_CAPS = 1 << 7;
export const VFIO_REGION_INFO_FLAG_READ = 1 << 0, VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
export const VFIO_REGION_INFO_FLAG_MMAP = 1 << 2, VFIO_REGION_INFO_FLAG_CAPS = 1 << 3;
export const VFIO_REGION_INFO_CAP_SPARSE_MMAP = 1, VFIO_REGION_INFO_CAP_TYPE = 2, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE = 3;

export const VFIO_PCI_BAR0_REGION_INDEX = 0, VFIO_PCI_BAR5_REGION_INDEX = 5, VFIO_PCI_ROM_REGION_INDEX = 6;
export const VFIO_PCI_CONFIG_REGION_INDEX = 7, VFIO_PCI_VGA_REGION_INDEX = 8, VFIO_PCI_NUM_REGIONS = 9;
export const VFIO_PCI_INTX_IRQ_INDEX = 0, VFIO_PCI_MSI_IRQ_INDEX = 1, VFIO_PCI_MSIX_IRQ_INDEX = 2;
export const VFIO_PCI_ERR_IRQ_INDEX = 3, VFIO_PCI_REQ_IRQ_INDEX = 4, VFIO_PCI_NUM_IRQS = 5;
export const VFIO_IRQ_INFO_EVENTFD = 1 << 0, VFIO_IRQ_INFO_MASKABLE = 1 << 1, VFIO_IRQ_INFO_AUTOMASKED = 1 << 2;
export const VFIO_IRQ_INFO_NORESIZE = 1 << 3;
/** struct vfio_irq_set flags: one data type, one action */
export const VFIO_IRQ_SET_DATA_NONE = 1 << 0, VFIO_IRQ_SET_DATA_BOOL = 1 << 1, VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2;
export const VFIO_IRQ_SET_ACTION_MASK = 1 << 3, VFIO_IRQ_SET_ACTION_UNMASK = 1 << 4, VFIO_IRQ_SET_ACTION_TRIGGER = 1 << 5;
export const VFIO_IRQ_SET_DATA_TYPE_MASK = 0x7, VFIO_IRQ_SET_ACTION_TYPE_MASK = 0x38;
/** VFIO_DEVICE_ATTACH_IOMMUFD_PT / DETACH: the only flag, a PASID follows */
export const VFIO_DEVICE_ATTACH_PASID = 1 << 0, VFIO_DEVICE_DETACH_PASID = 1 << 0;

export const VFIO_DEVICE_FEATURE_MASK = 0xffff;
export const VFIO_DEVICE_FEATURE_GET = 1 << 16, VFIO_DEVICE_FEATURE_SET = 1 << 17, VFIO_DEVICE_FEATURE_PROBE = 1 << 18;
export const FEATURES = {
  PCI_VF_TOKEN: 0, MIGRATION: 1, MIG_DEVICE_STATE: 2, LOW_POWER_ENTRY: 3, LOW_POWER_ENTRY_WITH_WAKEUP: 4,
  LOW_POWER_EXIT: 5, DMA_LOGGING_START: 6, DMA_LOGGING_STOP: 7, DMA_LOGGING_REPORT: 8, MIG_DATA_SIZE: 9,
  BUS_MASTER: 10, DMA_BUF: 11, MIG_PRECOPY_INFOv2: 12, DMA_BUF_REVOKE: 13, DMA_BUF_MEMATTR: 14,
} as const;
export type FeatureName = keyof typeof FEATURES;
export const VFIO_DEVICE_FEATURE_DMA_BUF_MEMATTR_NC = 0, VFIO_DEVICE_FEATURE_DMA_BUF_MEMATTR_WC = 1;

/** Kernel-internal (include/linux/vfio_pci_core.h), not uAPI: region index in the top bits of the fd offset. */
export const VFIO_PCI_OFFSET_SHIFT = 40;
export const VFIO_PCI_OFFSET_MASK = 2 ** VFIO_PCI_OFFSET_SHIFT - 1;
export const VFIO_PCI_INDEX_TO_OFFSET = (i: number) => i * 2 ** VFIO_PCI_OFFSET_SHIFT;
export const VFIO_PCI_OFFSET_TO_INDEX = (off: number) => Math.floor(off / 2 ** VFIO_PCI_OFFSET_SHIFT);

export const vfio_device_info = cstruct('vfio_device_info', [
  ['argsz', 'u32'], ['flags', 'u32'], ['num_regions', 'u32'], ['num_irqs', 'u32'], ['cap_offset', 'u32'], ['pad', 'u32'],
]);
export const vfio_region_info = cstruct('vfio_region_info', [
  ['argsz', 'u32'], ['flags', 'u32'], ['index', 'u32'], ['cap_offset', 'u32'], ['size', 'u64'], ['offset', 'u64'],
]);
export const vfio_info_cap_header = cstruct('vfio_info_cap_header', [['id', 'u16'], ['version', 'u16'], ['next', 'u32']]);
export const vfio_irq_info = cstruct('vfio_irq_info', [['argsz', 'u32'], ['flags', 'u32'], ['index', 'u32'], ['count', 'u32']]);
/** struct vfio_irq_set: followed by `count` u8 (DATA_BOOL) or s32 eventfds (DATA_EVENTFD) */
export const vfio_irq_set = cstruct('vfio_irq_set', [['argsz', 'u32'], ['flags', 'u32'], ['index', 'u32'], ['start', 'u32'], ['count', 'u32']]);
/** struct vfio_device_bind_iommufd (the device cdev): the iommufd in, the device's object id out */
export const vfio_device_bind_iommufd = cstruct('vfio_device_bind_iommufd', [['argsz', 'u32'], ['flags', 'u32'], ['iommufd', 's32'], ['out_devid', 'u32']]);
/** struct vfio_device_attach_iommufd_pt: pt_id in (an IOAS or HWPT id), the attached id out; pasid with VFIO_DEVICE_ATTACH_PASID */
export const vfio_device_attach_iommufd_pt = cstruct('vfio_device_attach_iommufd_pt', [['argsz', 'u32'], ['flags', 'u32'], ['pt_id', 'u32'], ['pasid', 'u32']]);
export const vfio_device_detach_iommufd_pt = cstruct('vfio_device_detach_iommufd_pt', [['argsz', 'u32'], ['flags', 'u32'], ['pasid', 'u32']]);
/** struct vfio_pci_hot_reset: followed by `count` group fds (__s32); with the device cdev, count is 0 */
export const vfio_pci_hot_reset = cstruct('vfio_pci_hot_reset', [['argsz', 'u32'], ['flags', 'u32'], ['count', 'u32']]);
export const vfio_device_feature = cstruct('vfio_device_feature', [['argsz', 'u32'], ['flags', 'u32']]);
export const vfio_region_dma_range = cstruct('vfio_region_dma_range', [['offset', 'u64'], ['length', 'u64']]);
export const vfio_device_feature_dma_buf = cstruct('vfio_device_feature_dma_buf', [
  ['region_index', 'u32'], ['open_flags', 'u32'], ['flags', 'u32'], ['nr_ranges', 'u32'],
]);
export const vfio_device_feature_dma_buf_revoke = cstruct('vfio_device_feature_dma_buf_revoke', [['dmabuf_fd', 's32']]);
export const vfio_device_feature_dma_buf_memattr = cstruct('vfio_device_feature_dma_buf_memattr', [
  ['dmabuf_fd', 's32'], ['memattr', 'u32'],
]);

/** VFIO_CHECK_EXTENSION / VFIO_SET_IOMMU arguments (extensions and IOMMU types) */
export const VFIO_TYPE1_IOMMU = 1, VFIO_SPAPR_TCE_IOMMU = 2, VFIO_TYPE1v2_IOMMU = 3, VFIO_DMA_CC_IOMMU = 4, VFIO_EEH = 5;
export const VFIO_TYPE1_NESTING_IOMMU = 6, VFIO_SPAPR_TCE_v2_IOMMU = 7, VFIO_NOIOMMU_IOMMU = 8, VFIO_UNMAP_ALL = 9, VFIO_UPDATE_VADDR = 10;
/** The extensions and IOMMU types by name, as scenarios write them. */
export const VFIO_EXTENSIONS = {
  VFIO_TYPE1_IOMMU, VFIO_SPAPR_TCE_IOMMU, VFIO_TYPE1v2_IOMMU, VFIO_DMA_CC_IOMMU, VFIO_EEH, VFIO_TYPE1_NESTING_IOMMU,
  VFIO_SPAPR_TCE_v2_IOMMU, VFIO_NOIOMMU_IOMMU, VFIO_UNMAP_ALL, VFIO_UPDATE_VADDR,
} as const;
/** struct vfio_group_status flags */
export const VFIO_GROUP_FLAGS_VIABLE = 1 << 0, VFIO_GROUP_FLAGS_CONTAINER_SET = 1 << 1;
export const vfio_group_status = cstruct('vfio_group_status', [['argsz', 'u32'], ['flags', 'u32']]);
/** struct vfio_iommu_type1_info: flags PGSIZES | CAPS; the capability chain follows at cap_offset */
export const VFIO_IOMMU_INFO_PGSIZES = 1 << 0, VFIO_IOMMU_INFO_CAPS = 1 << 1;
export const vfio_iommu_type1_info = cstruct('vfio_iommu_type1_info', [['argsz', 'u32'], ['flags', 'u32'], ['iova_pgsizes', 'u64'], ['cap_offset', 'u32'], ['pad', 'u32']]);
export const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = 2, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3;
/** struct vfio_iommu_type1_dma_map: READ/WRITE from the device's point of view; VADDR updates a vaddr */
export const VFIO_DMA_MAP_FLAG_READ = 1 << 0, VFIO_DMA_MAP_FLAG_WRITE = 1 << 1, VFIO_DMA_MAP_FLAG_VADDR = 1 << 2;
export const vfio_iommu_type1_dma_map = cstruct('vfio_iommu_type1_dma_map', [['argsz', 'u32'], ['flags', 'u32'], ['vaddr', 'u64'], ['iova', 'u64'], ['size', 'u64']]);
/** struct vfio_iommu_type1_dma_unmap: size is written back with the bytes unmapped */
export const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1 << 0, VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1, VFIO_DMA_UNMAP_FLAG_VADDR = 1 << 2;
export const vfio_iommu_type1_dma_unmap = cstruct('vfio_iommu_type1_dma_unmap', [['argsz', 'u32'], ['flags', 'u32'], ['iova', 'u64'], ['size', 'u64']]);
/** A value-argument ioctl's number as the model passes it: 8 little-endian bytes. */
export function valueArg(v: number | bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(v)), true);
  return b;
}
export function argValue(arg: Uint8Array): bigint {
  let v = 0n;
  for (let i = Math.min(arg.length, 8) - 1; i >= 0; i--) v = (v << 8n) | BigInt(arg[i]);
  return v;
}
