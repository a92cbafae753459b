// drivers/vfio/vfio_iommu_type1.c: the type1 IOMMU driver of the legacy container (VFIO_SET_IOMMU
// with VFIO_TYPE1_IOMMU or VFIO_TYPE1v2_IOMMU). It keeps the user's DMA mappings (struct vfio_dma:
// iova, vaddr, size, prot), pins their pages (vfio_pin_pages_remote -> vaddr_get_pfns) and maps them
// into the IOMMU domain of the container's groups (one domain in the model: every modelled device
// sits behind the same IOMMU driver, and vfio_iommu_type1_attach_group shares a compatible domain).
//
// What differs from iommufd: RAM is pinned through pin_user_pages_remote (mm/gup.ts), but a VM_PFNMAP
// VMA (a BAR mmap) cannot be pinned, and type1 then looks the PFN up itself (follow_fault_pfn:
// follow_pfnmap_start, faulting it in with fixup_user_fault), and maps that raw PFN. A BAR PFN has
// no struct page (is_invalid_reserved_pfn): nothing is pinned and nothing tells type1 when the
// BAR's owner revokes it. Memory decode off, a reset or a DMABUF revoke zap the user mappings, and
// the IOMMU keeps translating the IOVA to the BAR until the user unmaps it. While decode is off the
// lookup faults (SIGBUS from vfio-pci's fault handler), so such a MAP_DMA is -EFAULT.
import type { Kernel } from '../kernel.ts';
import { ev, Mutex, type KGen } from '../sched/sched.ts';
import type { MmStruct } from '../mm/vma.ts';
import { faultin_pfn, pinnableVma } from '../mm/gup.ts';
import { IommuDomain, MSI_RESERVED, PROT_READ, PROT_WRITE } from '../iommufd/io_pagetable.ts';
import { E } from '../../uapi/errno.ts';
import { PAGE_SIZE } from '../../uapi/mman.ts';
import { decode, encodeInto, offsetofend } from '../../uapi/struct.ts';
import {
  CONTAINER_IOCTLS, IOCTLS, VFIO_DMA_CC_IOMMU, VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_VADDR, VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, VFIO_DMA_UNMAP_FLAG_VADDR, VFIO_IOMMU_INFO_CAPS, VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU, VFIO_UNMAP_ALL, VFIO_UPDATE_VADDR, argValue, vfio_info_cap_header, vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap, vfio_iommu_type1_info,
} from '../../uapi/vfio.ts';
import type { VfioIommuDriverOps } from './container.ts';
import type { VfioGroup } from './group.ts';

const hex = (n: number) => `0x${n.toString(16)}`;
/** dma_entry_limit, the module parameter's default (U16_MAX) */
const DMA_ENTRY_LIMIT = 65535;
/** The domain's page sizes: VT-d's 4 KiB, 2 MiB and 1 GiB (intel_iommu's pgsize_bitmap). */
export const TYPE1_PGSIZES = 0x4020_1000;
/** The IOMMU's input address width: 48 bits (VT-d with 4-level tables); the aperture ends below 2^48. */
const APERTURE_LAST = 2 ** 48 - 1;
/** DIRTY_BITMAP_SIZE_MAX of the migration capability (the bitmap of 256 TiB at 4 KiB pages) */
const DIRTY_BITMAP_SIZE_MAX = 256 * 1024 * 1024;

/** struct vfio_dma: one MAP_DMA. `pfns` are the PFNs mapped, page by page; `rsvd` those not pinned (no struct page). */
export class VfioDma {
  readonly pfns: number[] = [];
  rsvd = 0;
  constructor(readonly iova: number, readonly size: number, readonly vaddr: number, readonly prot: number, readonly mm: MmStruct) {}
  get last(): number {
    return this.iova + this.size - 1;
  }
}

/** struct vfio_iommu: the container's type1 state. */
export class VfioIommu {
  readonly lock: Mutex;
  readonly dma_list: VfioDma[] = [];
  dma_avail = DMA_ENTRY_LIMIT;
  /** the domain the groups are attached to; null while no group is (never, once SET_IOMMU returned) */
  domain: IommuDomain | null = null;
  readonly groups = new Set<VfioGroup>();
  constructor(k: Kernel, readonly id: number, readonly v2: boolean) {
    this.lock = new Mutex(k.sched, `type1-${id}.lock`, 'vfio_iommu.lock');
  }
  get name(): string {
    return `container type1-${this.id}`;
  }
}

/** vfio_find_dma: a mapping that overlaps [start, start + size) (size 0: strictly inside one). */
function vfio_find_dma(iommu: VfioIommu, start: number, size: number): VfioDma | null {
  return iommu.dma_list.find((d) => start + size > d.iova && start < d.iova + d.size) ?? null;
}

/** vfio_iommu_iova_dma_valid: inside the aperture and clear of the reserved (MSI) window. */
function iovaValid(start: number, last: number): boolean {
  return last <= APERTURE_LAST && (last < MSI_RESERVED.start || start > MSI_RESERVED.last);
}

/**
 * vaddr_get_pfns for one page, under mmap_lock: pin_user_pages_remote (FOLL_LONGTERM) of RAM; for a
 * VM_PFNMAP VMA, follow_fault_pfn: the PFN its page table maps, faulted in by fixup_user_fault
 * (write faults need a writable VMA, vma_permits_fault); the fault of a disabled BAR is SIGBUS, which
 * fixup_user_fault returns as -EFAULT. Returns the PFN and whether it is reserved (not pinned).
 */
function* vaddr_get_pfn(k: Kernel, mm: MmStruct, va: number, write: boolean): KGen<{ pfn: number; rsvd: boolean; npages: number } | number> {
  const vma = pinnableVma(mm, va, write);
  if (vma) {
    const pfn = yield* faultin_pfn(k, mm, vma, va, write);
    return pfn < 0 ? pfn : { pfn, rsvd: false, npages: 1 };
  }
  const pfnmap = mm.find_vma(va);
  if (!pfnmap || !pfnmap.flags.pfnmap || (write && !pfnmap.flags.write)) return -E.EFAULT;
  const pfn = yield* faultin_pfn(k, mm, pfnmap, va, write);
  if (pfn < 0) return pfn;
  // is_invalid_reserved_pfn: device memory has no struct page; RAM under a PFN map would be -EFAULT
  if (!k.pci.resolve(pfn * PAGE_SIZE)) return -E.EFAULT;
  // the rest of a huge entry is contiguous and comes with it (vaddr_get_pfns' batch of a PMD or PUD)
  const e = mm.pt.lookup(va)!;
  return { pfn, rsvd: true, npages: (e.va + PAGE_SIZE * 2 ** e.order - va) / PAGE_SIZE };
}

/** vfio_unmap_unpin + vfio_unlink_dma: the domain's translations go, the pinned pages are unpinned. */
function* vfio_remove_dma(k: Kernel, iommu: VfioIommu, dma: VfioDma): KGen {
  if (iommu.domain && dma.pfns.length) {
    yield ev('iommu_unmap', iommu.domain.key);
    iommu.domain.unmap(dma.iova, dma.size);
  }
  iommu.dma_list.splice(iommu.dma_list.indexOf(dma), 1);
  iommu.dma_avail++;
  k.note(`${iommu.name}: iova ${hex(dma.iova)}+${hex(dma.size)} unmapped${dma.pfns.length - dma.rsvd ? `, ${dma.pfns.length - dma.rsvd} page(s) unpinned` : ''}`);
}

/**
 * vfio_pin_map_dma: pin (or look up) each page of the user range and map it into the domain at its
 * IOVA; on an error what was mapped is removed again and the mapping goes (vfio_remove_dma).
 */
function* vfio_pin_map_dma(k: Kernel, iommu: VfioIommu, dma: VfioDma): KGen<number> {
  const write = !!(dma.prot & PROT_WRITE);
  yield* dma.mm.mmap_lock.down_read();
  let err = 0;
  for (let off = 0; off < dma.size; ) {
    const r = yield* vaddr_get_pfn(k, dma.mm, dma.vaddr + off, write);
    if (typeof r === 'number') {
      err = r;
      break;
    }
    const n = Math.min(r.npages, (dma.size - off) / PAGE_SIZE);
    for (let i = 0; i < n; i++) dma.pfns.push(r.pfn + i);
    if (r.rsvd) dma.rsvd += n;
    off += n * PAGE_SIZE;
  }
  yield* dma.mm.mmap_lock.up_read();
  if (!err) {
    yield ev('iommu_map', iommu.domain!.key);
    // vfio_pin_pages_remote hands back physically contiguous runs, each one iommu_map
    for (let i = 0; i < dma.pfns.length; ) {
      let n = 1;
      while (i + n < dma.pfns.length && dma.pfns[i + n] === dma.pfns[i] + n) n++;
      iommu.domain!.map({ iova: dma.iova + i * PAGE_SIZE, len: n * PAGE_SIZE, pa: dma.pfns[i] * PAGE_SIZE, prot: dma.prot });
      i += n;
    }
    const bar = dma.rsvd ? k.pci.resolve(dma.pfns[0] * PAGE_SIZE) : null;
    k.note(`${iommu.name}: iova ${hex(dma.iova)}+${hex(dma.size)} -> ${bar ? `${bar.dev.name} BAR${bar.bar.index} + ${hex(dma.pfns[0] * PAGE_SIZE - bar.bar.start)} (raw PFNs, not pinned)` : `user va ${hex(dma.vaddr)} (${dma.pfns.length} pinned page(s))`}`);
    return 0;
  }
  dma.pfns.length = 0;
  yield* vfio_remove_dma(k, iommu, dma);
  return err;
}

/**
 * VFIO_IOMMU_MAP_DMA (vfio_iommu_type1_map_dma, vfio_dma_do_map), in its order: argsz below 32 or
 * unknown flags -EINVAL; neither READ nor WRITE -EINVAL; then under iommu->lock a zero size or one,
 * an IOVA or a vaddr not aligned to the smallest page size -EINVAL, a wrap -EINVAL, an overlap with
 * a mapping -EEXIST, no entries left -ENOSPC, an IOVA outside the aperture or in a reserved range
 * -EINVAL; then the pages (-EFAULT for a hole, or a BAR whose fault fails). VFIO_DMA_MAP_FLAG_VADDR
 * (updating the vaddr of a mapping for live update) is not modelled.
 */
function* vfio_iommu_type1_map_dma(k: Kernel, iommu: VfioIommu, arg: Uint8Array): KGen<number> {
  const minsz = offsetofend(vfio_iommu_type1_dma_map, 'size');
  if (arg.length < minsz) return -E.EFAULT;
  const map = decode(vfio_iommu_type1_dma_map, arg);
  const flags = Number(map.flags);
  if (Number(map.argsz) < minsz || flags & ~(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE | VFIO_DMA_MAP_FLAG_VADDR)) return -E.EINVAL;
  const prot = (flags & VFIO_DMA_MAP_FLAG_READ ? PROT_READ : 0) | (flags & VFIO_DMA_MAP_FLAG_WRITE ? PROT_WRITE : 0);
  if (flags & VFIO_DMA_MAP_FLAG_VADDR) {
    if (prot) return -E.EINVAL;
    k.note('VFIO_DMA_MAP_FLAG_VADDR (vaddr update) is not modelled');
    return -E.EOPNOTSUPP;
  }
  if (!prot) return -E.EINVAL;
  const size = map.size as bigint, iova = map.iova as bigint, vaddr = map.vaddr as bigint;
  yield* iommu.lock.lock();
  const ret = yield* (function* (): KGen<number> {
    const mask = BigInt(PAGE_SIZE - 1);
    if (!size || (size | iova | vaddr) & mask) return -E.EINVAL;
    if (iova + size - 1n >= 2n ** 64n || vaddr + size - 1n >= 2n ** 64n) return -E.EINVAL;
    const start = Number(iova), len = Number(size);
    if (vfio_find_dma(iommu, start, len)) return -E.EEXIST;
    if (!iommu.dma_avail) return -E.ENOSPC;
    if (!iovaValid(start, start + len - 1)) return -E.EINVAL;
    const dma = new VfioDma(start, len, Number(vaddr), prot, k.currentProcess().mm);
    iommu.dma_avail--;
    iommu.dma_list.push(dma);
    iommu.dma_list.sort((a, b) => a.iova - b.iova);
    return yield* vfio_pin_map_dma(k, iommu, dma);
  })();
  yield* iommu.lock.unlock();
  return ret;
}

/**
 * VFIO_IOMMU_UNMAP_DMA (vfio_dma_do_unmap): argsz below 24 or unknown flags -EINVAL; the dirty
 * bitmap and VADDR flags are not modelled; ALL needs iova and size 0 and unmaps everything; else a
 * size of zero or not page-aligned, an unaligned IOVA or a wrap -EINVAL, and (v2) a range that cuts
 * a mapping at either end -EINVAL. Every mapping of the caller's mm inside the range goes; size is
 * written back with the bytes unmapped (0 when there were none, which is no error).
 */
function* vfio_iommu_type1_unmap_dma(k: Kernel, iommu: VfioIommu, arg: Uint8Array): KGen<number> {
  const minsz = offsetofend(vfio_iommu_type1_dma_unmap, 'size');
  if (arg.length < minsz) return -E.EFAULT;
  const unmap = decode(vfio_iommu_type1_dma_unmap, arg);
  const flags = Number(unmap.flags);
  const known = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_ALL | VFIO_DMA_UNMAP_FLAG_VADDR;
  if (Number(unmap.argsz) < minsz || flags & ~known) return -E.EINVAL;
  if (flags & (VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_VADDR)) {
    k.note(`VFIO_IOMMU_UNMAP_DMA with ${flags & VFIO_DMA_UNMAP_FLAG_VADDR ? 'VFIO_DMA_UNMAP_FLAG_VADDR' : 'the dirty bitmap'} is not modelled`);
    return -E.EOPNOTSUPP;
  }
  const all = !!(flags & VFIO_DMA_UNMAP_FLAG_ALL);
  let iova = unmap.iova as bigint, size = unmap.size as bigint;
  if (all) {
    if (iova || size) return -E.EINVAL;
    size = 2n ** 64n - 1n;
  } else {
    const mask = BigInt(PAGE_SIZE - 1);
    if (iova & mask || !size || size & mask || iova + size - 1n >= 2n ** 64n) return -E.EINVAL;
  }
  yield* iommu.lock.lock();
  let ret = 0, unmapped = 0;
  const start = Number(iova), end = Number(iova + size); // exclusive
  if (iommu.v2 && !all) {
    const first = vfio_find_dma(iommu, start, 1);
    const last = vfio_find_dma(iommu, end - 1, 0);
    if ((first && first.iova !== start) || (last && last.iova + last.size !== end)) ret = -E.EINVAL;
  }
  if (!ret) {
    const mm = k.currentProcess().mm;
    for (const dma of iommu.dma_list.filter((d) => d.iova < end && d.iova + d.size > start)) {
      if (!iommu.v2 && start > dma.iova) break;
      if (dma.mm !== mm) break; // only the address space that mapped it may unmap it
      unmapped += dma.size;
      yield* vfio_remove_dma(k, iommu, dma);
    }
  }
  yield* iommu.lock.unlock();
  if (ret) return ret;
  encodeInto(vfio_iommu_type1_dma_unmap, { size: BigInt(unmapped) }, arg, 0);
  return 0;
}

/** The capability chain of GET_INFO, in vfio_iommu_type1_get_info's order: migration, DMA avail, IOVA ranges. */
function infoCaps(iommu: VfioIommu, base: number): Uint8Array {
  const ranges = [{ start: 0, end: MSI_RESERVED.start - 1 }, { start: MSI_RESERVED.last + 1, end: APERTURE_LAST }];
  const sizes = [32, 16, 16 + 16 * ranges.length];
  const buf = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
  const dv = new DataView(buf.buffer);
  let off = 0;
  const header = (id: number, i: number) => {
    const next = i + 1 < sizes.length ? base + off + sizes[i] : 0;
    encodeInto(vfio_info_cap_header, { id, version: 1, next }, buf, off);
  };
  header(VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, 0);
  dv.setUint32(off + 8, 0, true); // flags
  dv.setBigUint64(off + 16, BigInt(PAGE_SIZE), true); // pgsize_bitmap: dirty tracking at the smallest page
  dv.setBigUint64(off + 24, BigInt(DIRTY_BITMAP_SIZE_MAX), true);
  off += sizes[0];
  header(VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 1);
  dv.setUint32(off + 8, iommu.dma_avail, true);
  off += sizes[1];
  header(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 2);
  dv.setUint32(off + 8, ranges.length, true);
  ranges.forEach((r, i) => {
    dv.setBigUint64(off + 16 + 16 * i, BigInt(r.start), true);
    dv.setBigUint64(off + 24 + 16 * i, BigInt(r.end), true);
  });
  return buf;
}

/**
 * VFIO_IOMMU_GET_INFO (vfio_iommu_type1_get_info): argsz below 16 -EINVAL; flags PGSIZES with the
 * domain's page sizes, and CAPS with the chain; an argsz too small for it is answered with the
 * size needed (argsz), a large enough one gets the chain at cap_offset 24.
 */
function vfio_iommu_type1_get_info(iommu: VfioIommu, arg: Uint8Array): number {
  const minsz = offsetofend(vfio_iommu_type1_info, 'iova_pgsizes');
  if (arg.length < minsz) return -E.EFAULT;
  const info = decode(vfio_iommu_type1_info, arg);
  const argsz = Number(info.argsz);
  if (argsz < minsz) return -E.EINVAL;
  const capsz = offsetofend(vfio_iommu_type1_info, 'cap_offset');
  const caps = infoCaps(iommu, vfio_iommu_type1_info.size);
  const need = vfio_iommu_type1_info.size + caps.length;
  let outArgsz = argsz, capOffset = 0;
  if (argsz < need) outArgsz = need;
  else {
    capOffset = vfio_iommu_type1_info.size;
    if (arg.length >= need) arg.set(caps, capOffset);
  }
  const v = { argsz: outArgsz, flags: VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS, iova_pgsizes: BigInt(TYPE1_PGSIZES), cap_offset: capOffset };
  encodeInto(vfio_iommu_type1_info, v, arg.subarray(0, argsz >= capsz ? capsz : minsz), 0);
  return 0;
}

/** vfio_iommu_type1_check_extension: data is null while the container has no IOMMU set. */
function check_extension(iommu: VfioIommu | null, ext: number): number {
  switch (ext) {
    case VFIO_TYPE1_IOMMU:
    case VFIO_TYPE1v2_IOMMU:
    case VFIO_UNMAP_ALL:
      return 1;
    case VFIO_UPDATE_VADDR:
      return iommu ? 1 : 0; // no emulated (mdev) devices in the model
    case VFIO_DMA_CC_IOMMU:
      return iommu ? 1 : 0; // VT-d with snoop control enforces coherency
    default:
      return 0; // VFIO_TYPE1_NESTING_IOMMU is gone since 6.13 ("vfio: Remove VFIO_TYPE1_NESTING_IOMMU")
  }
}

/** vfio_iommu_driver_ops_type1 */
export const vfio_iommu_driver_ops_type1: VfioIommuDriverOps = {
  name: 'vfio-iommu-type1',
  /** vfio_iommu_type1_open: TYPE1 or TYPE1v2, else -EINVAL */
  open(k, arg) {
    if (arg !== VFIO_TYPE1_IOMMU && arg !== VFIO_TYPE1v2_IOMMU) return -E.EINVAL;
    return new VfioIommu(k, k.nextId('vfio-iommu'), arg === VFIO_TYPE1v2_IOMMU);
  },
  /** vfio_iommu_type1_release: unmap and unpin everything, free the domain */
  *release(k, data) {
    const iommu = data as VfioIommu;
    yield* iommu.lock.lock();
    for (const dma of [...iommu.dma_list]) yield* vfio_remove_dma(k, iommu, dma);
    iommu.domain = null;
    yield* iommu.lock.unlock();
  },
  *ioctl(k, data, cmd, arg) {
    const iommu = data as VfioIommu | null;
    if (cmd === IOCTLS.VFIO_CHECK_EXTENSION) return check_extension(iommu, Number(argValue(arg)));
    if (!iommu) return -E.EINVAL;
    switch (cmd) {
      case CONTAINER_IOCTLS.VFIO_IOMMU_GET_INFO: return vfio_iommu_type1_get_info(iommu, arg);
      case CONTAINER_IOCTLS.VFIO_IOMMU_MAP_DMA: return yield* vfio_iommu_type1_map_dma(k, iommu, arg);
      case CONTAINER_IOCTLS.VFIO_IOMMU_UNMAP_DMA: return yield* vfio_iommu_type1_unmap_dma(k, iommu, arg);
      default: return -E.ENOTTY; // VFIO_IOMMU_DIRTY_PAGES: not modelled (ops.ts says so)
    }
  },
  /**
   * vfio_iommu_type1_attach_group: a group already attached -EINVAL; the first group gets the
   * domain (every modelled device uses the same IOMMU driver, so later groups share it). Interrupt
   * remapping is assumed present (no -EPERM for allow_unsafe_interrupts).
   */
  *attach_group(k, data, group) {
    const iommu = data as VfioIommu;
    yield* iommu.lock.lock();
    let r = 0;
    if (iommu.groups.has(group)) r = -E.EINVAL;
    else {
      if (!iommu.domain) iommu.domain = new IommuDomain(`type1-${iommu.id}.domain`);
      yield ev('attach_dev', group.iommuKey, 'w');
      iommu.groups.add(group);
      group.domain = iommu.domain;
      k.note(`group ${group.id} attached to ${iommu.name}'s IOMMU domain`);
    }
    yield* iommu.lock.unlock();
    return r;
  },
  /**
   * vfio_iommu_type1_detach_group: the group leaves the domain (back to blocking: DMA faults); the
   * last group takes every mapping with it (vfio_iommu_unmap_unpin_all) and frees the domain.
   */
  *detach_group(k, data, group) {
    const iommu = data as VfioIommu;
    yield* iommu.lock.lock();
    if (iommu.groups.delete(group)) {
      yield ev('detach_dev', group.iommuKey, 'w');
      group.domain = null;
      k.note(`group ${group.id} detached from ${iommu.name}'s IOMMU domain`);
      if (!iommu.groups.size) {
        for (const dma of [...iommu.dma_list]) yield* vfio_remove_dma(k, iommu, dma);
        iommu.domain = null;
      }
    }
    yield* iommu.lock.unlock();
  },
  domains(data) {
    const d = (data as VfioIommu).domain;
    return d ? [d] : [];
  },
};
