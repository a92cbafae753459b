// <uapi/linux/iommufd.h>: the ioctls of /dev/iommu the model implements, their numbers and struct
// layouts (x86-64). IOMMUFD_TYPE is ';' like VFIO's, with commands from 0x80 (VFIO's stop below).
// Layouts of iommu_ioas_map_file and the others as include/uapi/linux/iommufd.h has them.
import { _IO } from './ioctl.ts';
import { cstruct } from './struct.ts';

export const IOMMUFD_TYPE = ';'.charCodeAt(0);
export const IOMMUFD_CMD = {
  DESTROY: 0x80,
  IOAS_ALLOC: 0x81,
  IOAS_ALLOW_IOVAS: 0x82,
  IOAS_COPY: 0x83,
  IOAS_IOVA_RANGES: 0x84,
  IOAS_MAP: 0x85,
  IOAS_UNMAP: 0x86,
  OPTION: 0x87,
  VFIO_IOAS: 0x88,
  IOAS_MAP_FILE: 0x8f,
} as const;

export const IOMMU_DESTROY = _IO(IOMMUFD_TYPE, IOMMUFD_CMD.DESTROY);
export const IOMMU_IOAS_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD.IOAS_ALLOC);
export const IOMMU_IOAS_MAP = _IO(IOMMUFD_TYPE, IOMMUFD_CMD.IOAS_MAP);
export const IOMMU_IOAS_UNMAP = _IO(IOMMUFD_TYPE, IOMMUFD_CMD.IOAS_UNMAP);
export const IOMMU_IOAS_MAP_FILE = _IO(IOMMUFD_TYPE, IOMMUFD_CMD.IOAS_MAP_FILE);

/** The ioctls above by name, for scenarios that write them as raw ioctls. */
export const IOMMUFD_IOCTLS = { IOMMU_DESTROY, IOMMU_IOAS_ALLOC, IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FILE, IOMMU_IOAS_UNMAP } as const;

/** enum iommufd_ioas_map_flags */
export const IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0;
export const IOMMU_IOAS_MAP_WRITEABLE = 1 << 1;
export const IOMMU_IOAS_MAP_READABLE = 1 << 2;

export const iommu_destroy = cstruct('iommu_destroy', [['size', 'u32'], ['id', 'u32']]);
export const iommu_ioas_alloc = cstruct('iommu_ioas_alloc', [['size', 'u32'], ['flags', 'u32'], ['out_ioas_id', 'u32']]);
/** size u32@0, flags u32@4, ioas_id u32@8, fd s32@12, start u64@16, length u64@24, iova u64@32 */
export const iommu_ioas_map_file = cstruct('iommu_ioas_map_file', [
  ['size', 'u32'], ['flags', 'u32'], ['ioas_id', 'u32'], ['fd', 's32'], ['start', 'u64'], ['length', 'u64'], ['iova', 'u64'],
]);
/** size u32@0, flags u32@4, ioas_id u32@8, __reserved u32@12, user_va u64@16, length u64@24, iova u64@32 */
export const iommu_ioas_map = cstruct('iommu_ioas_map', [
  ['size', 'u32'], ['flags', 'u32'], ['ioas_id', 'u32'], ['__reserved', 'u32'], ['user_va', 'u64'], ['length', 'u64'], ['iova', 'u64'],
]);
export const iommu_ioas_unmap = cstruct('iommu_ioas_unmap', [['size', 'u32'], ['ioas_id', 'u32'], ['iova', 'u64'], ['length', 'u64']]);
