// drivers/iommu/iommufd/io_pagetable.c and pages.c, reduced to what a DMABUF import needs (Jason
// Gunthorpe's "iommufd: Add DMABUF to iopt_pages", vfio_pci_dma_buf_iommufd_map()): an IOAS with
// its areas (IOVA ranges), the iopt_pages of a DMABUF (the physical range VFIO handed over through
// the private interconnect), the IOMMU domain of the peer device attached to the IOAS, MAP_FILE of
// a DMABUF, UNMAP, and the revoke callback (iopt_revoke_notify). Peer DMA goes through the domain.
//
// Every IOAS has one domain (the hw_pagetable iommufd auto-creates when a device attaches),
// filled as areas are mapped whether or not a device is attached yet; its IOVA alignment is
// PAGE_SIZE. The `dma_read`/`dma_write` steps without a device are an implicit peer device behind
// that domain; a bound VFIO device DMAs through the domain of the IOAS it is attached to
// (device.ts). User memory (IOMMU_IOAS_MAP, iopt_map_user_pages) is pinned at map time.
import type { Kernel } from '../kernel.ts';
import { announceTarget, ev, Mutex, RwSem, type KGen } from '../sched/sched.ts';
import { fput, type File } from '../fs/file.ts';
import {
  dma_buf_detach, dma_buf_dynamic_attach, dma_buf_pin, dma_buf_put, dma_buf_unpin, isDmaBufFile, type DmaBuf,
  type DmaBufAttachOps, type DmaBufAttachment,
} from '../dma-buf/dma-buf.ts';
import { vfio_pci_dma_buf_iommufd_map, type PhysVec } from '../vfio/pci/dmabuf.ts';
import { E } from '../../uapi/errno.ts';
import { PAGE_SIZE } from '../../uapi/mman.ts';
import { IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE } from '../../uapi/iommufd.ts';
import type { IommufdCtx } from './iommufd.ts';
import type { IommufdDevice } from './device.ts';
import type { MmStruct } from '../mm/vma.ts';
import type { Process } from '../process.ts';
import { pin_user_pages } from '../mm/gup.ts';

const hex = (n: number) => `0x${n.toString(16)}`;
/** iopt_pages counts PFNs in an unsigned long with a margin; the model's bound is far above any BAR */
const MAX_NPFNS = 2 ** 52;
/** x86: the interrupt-remapping window every device reserves in its IOVA space (IOMMU_RESV_MSI) */
export const MSI_RESERVED = { start: 0xfee0_0000, last: 0xfeef_ffff };
export const U64_MAX = 2 ** 64 - 1;

/** One IOMMU translation: [iova, iova + len) -> [pa, pa + len) with IOMMU_READ/WRITE. */
export interface Translation {
  iova: number;
  len: number;
  pa: number;
  prot: number;
}

/** The peer device's IOMMU page table. Only iommufd writes it; the device reads it on every DMA. */
export class IommuDomain {
  readonly maps: Translation[] = [];
  constructor(readonly key: string) {}
  map(t: Translation): void {
    this.maps.push(t);
    this.maps.sort((a, b) => a.iova - b.iova);
  }
  /** Remove every translation inside [iova, iova + len); returns the bytes removed. */
  unmap(iova: number, len: number): number {
    let n = 0;
    for (let i = this.maps.length - 1; i >= 0; i--) {
      const t = this.maps[i];
      if (t.iova >= iova && t.iova + t.len <= iova + len) {
        n += t.len;
        this.maps.splice(i, 1);
      }
    }
    return n;
  }
  /** Translations that overlap [iova, iova + len). */
  overlapping(iova: number, len: number): Translation[] {
    return this.maps.filter((t) => t.iova < iova + len && iova < t.iova + t.len);
  }
  lookup(iova: number, width: number): Translation | null {
    return this.maps.find((t) => iova >= t.iova && iova + width <= t.iova + t.len) ?? null;
  }
}

/** What every struct iopt_pages has: its mutex and the areas that use it. */
abstract class IoptPagesBase {
  readonly mutex: Mutex;
  /** the areas using these pages */
  readonly areas = new Set<IoptArea>();
  released = false;
  constructor(readonly k: Kernel, readonly id: number) {
    this.mutex = new Mutex(k.sched, `iopt_pages${id}.mutex`, 'iopt_pages.mutex');
  }
  get key(): string {
    return `iopt_pages${this.id}`;
  }
}

/**
 * struct iopt_pages of user memory (IOPT_ADDRESS_USER): the pages pinned from the caller's address
 * space at IOMMU_IOAS_MAP, one PFN per page, unpinned when no area uses them any more.
 */
export class IoptUserPages extends IoptPagesBase {
  constructor(k: Kernel, id: number, readonly mm: MmStruct, readonly uptr: number, readonly pfns: number[]) {
    super(k, id);
  }
}

/**
 * struct iopt_pages of a DMABUF (IOPT_ADDRESS_DMABUF): one per MAP_FILE, holding the importer
 * attachment, the file reference and the physical range. Revocation sets phys.len to 0.
 */
export class IoptPages extends IoptPagesBase {
  /** pages->dmabuf.phys: the whole (single-range) buffer, as vfio_pci_dma_buf_iommufd_map returns it */
  phys: PhysVec = { paddr: 0, len: 0 };
  attach: DmaBufAttachment | null = null;
  constructor(k: Kernel, id: number, readonly dmabuf: DmaBuf, readonly file: File, readonly start: number, readonly length: number) {
    super(k, id);
  }
  /** iopt_dmabuf_revoked */
  get revoked(): boolean {
    return this.phys.len === 0;
  }
}

/** struct iopt_area: one mapped IOVA range of an IOAS. */
export class IoptArea {
  /** translations of this area are in the domain */
  filled = false;
  constructor(readonly ioas: Ioas, readonly iova: number, readonly length: number, readonly pages: IoptPages | IoptUserPages, readonly prot: number) {}
  get last(): number {
    return this.iova + this.length - 1;
  }
}

/** struct iommufd_ioas with its io_pagetable and the implicit peer device's domain. */
export class Ioas {
  readonly areas: IoptArea[] = [];
  readonly iova_rwsem: RwSem;
  readonly domain: IommuDomain;
  /** the devices attached (each a user of the IOAS: IOMMU_DESTROY is -EBUSY while any is) */
  readonly devices = new Set<IommufdDevice>();
  destroyed = false;
  constructor(readonly k: Kernel, readonly ctx: IommufdCtx, readonly id: number) {
    const base = `iommufd${ctx.id}.ioas${id}`;
    this.iova_rwsem = new RwSem(k.sched, `${base}.iova_rwsem`, 'iova_rwsem');
    this.domain = new IommuDomain(`${base}.domain`);
  }
  get name(): string {
    return `iommufd${this.ctx.id}/ioas${this.id}`;
  }
}

/** IOMMU_READ/IOMMU_WRITE from the uAPI map flags (conv_iommu_prot). */
export const PROT_READ = 1, PROT_WRITE = 2;
function convProt(flags: number): number {
  return (flags & IOMMU_IOAS_MAP_READABLE ? PROT_READ : 0) | (flags & IOMMU_IOAS_MAP_WRITEABLE ? PROT_WRITE : 0);
}

/**
 * iopt_revoke_notify: the invalidate_mappings of iommufd's attachment, called by the exporter with
 * the resv lock held. Under pages->mutex: unless already revoked, remove every area's translations
 * from the domain and set phys.len to 0. Nothing ever maps them again (no automatic remap).
 */
function* iopt_revoke_notify(k: Kernel, attach: DmaBufAttachment): KGen {
  const pages = attach.importer_priv as IoptPages;
  yield* pages.mutex.lock();
  if (!pages.revoked) {
    for (const area of pages.areas) {
      if (!area.filled) continue;
      if (k.mut('iommufd-revoke-no-unmap')) continue;
      yield ev('iommu_unmap', area.ioas.domain.key);
      area.ioas.domain.unmap(area.iova, area.length);
      area.filled = false;
      k.note(`${area.ioas.name}: iova ${hex(area.iova)}+${hex(area.length)} unmapped from the domain (dmabuf${pages.dmabuf.id} revoked)`);
    }
    yield ev('WRITE(phys.len)', pages.key);
    pages.phys = { paddr: pages.phys.paddr, len: 0 };
  }
  yield* pages.mutex.unlock();
}

const iopt_dmabuf_attach_revoke_ops: DmaBufAttachOps = {
  name: 'iommufd',
  allow_peer2peer: true,
  invalidate_mappings: iopt_revoke_notify,
};

/**
 * iopt_alloc_dmabuf_pages + iopt_map_dmabuf: check the span against the buffer, attach dynamically
 * (VFIO's attach rules apply: -EOPNOTSUPP, -ENODEV), then under the resv lock pin and fetch the
 * physical range through the private interconnect (symbol_get: only with CONFIG_VFIO_PCI_DMABUF,
 * else -EOPNOTSUPP; -ENODEV revoked, -EOPNOTSUPP for more than one range). On success the pages own
 * the caller's file reference.
 */
function* iopt_alloc_dmabuf_pages(k: Kernel, file: File, start: number, length: number): KGen<IoptPages | number> {
  const dmabuf = file.private_data as DmaBuf;
  if (start + length - 1 >= dmabuf.size || length / PAGE_SIZE >= MAX_NPFNS) return -E.EINVAL;
  const pages = new IoptPages(k, k.nextId('iopt_pages'), dmabuf, file, start, length);
  const attach = yield* dma_buf_dynamic_attach(k, dmabuf, `iommufd(pages${pages.id})`, iopt_dmabuf_attach_revoke_ops, pages);
  if (typeof attach === 'number') return attach;
  pages.attach = attach;
  yield* dmabuf.resv.lock();
  let r = yield* dma_buf_pin(k, attach);
  let phys: PhysVec | number = r;
  if (r === 0) {
    phys = k.config.VFIO_PCI_DMABUF ? vfio_pci_dma_buf_iommufd_map(attach) : -E.EOPNOTSUPP;
    if (typeof phys === 'number') yield* dma_buf_unpin(k, attach);
    else {
      yield ev('WRITE(phys)', pages.key);
      pages.phys = phys;
    }
  }
  yield* dmabuf.resv.unlock();
  if (typeof phys === 'number') {
    r = phys;
    yield* dma_buf_detach(k, attach);
    return r;
  }
  return pages;
}

/** iopt_release_pages: unpin, detach and put the file once no area uses the pages. */
function* iopt_release_pages(k: Kernel, pages: IoptPages): KGen {
  pages.released = true;
  const attach = pages.attach!;
  yield* pages.dmabuf.resv.lock();
  yield* dma_buf_unpin(k, attach);
  yield* pages.dmabuf.resv.unlock();
  yield* dma_buf_detach(k, attach);
  yield* dma_buf_put(k, pages.dmabuf);
}

/** Lowest IOVA hole of `length` at `align` (iopt_alloc_iova), avoiding areas and reserved ranges. */
function allocIova(ioas: Ioas, length: number, align: number): number | null {
  const used = [...ioas.areas.map((a) => ({ start: a.iova, last: a.last })), MSI_RESERVED].sort((a, b) => a.start - b.start);
  let cand = 0;
  for (const u of used) {
    if (cand + length - 1 < u.start) break;
    if (u.last + 1 > cand) cand = Math.ceil((u.last + 1) / align) * align;
  }
  return cand + length - 1 <= U64_MAX ? cand : null;
}
/** The lowest set bit of a positive integer (exact for doubles up to 2^64). */
function lowestBit(n: number): number {
  let b = 1;
  while (n % (2 * b) === 0) b *= 2;
  return b;
}
function overlaps(ioas: Ioas, iova: number, length: number): 'area' | 'reserved' | null {
  const last = iova + length - 1;
  if (ioas.areas.some((a) => a.iova <= last && iova <= a.last)) return 'area';
  if (MSI_RESERVED.start <= last && iova <= MSI_RESERVED.last) return 'reserved';
  return null;
}

/**
 * iopt_map_common's placement, under iova_rwsem (write): the fixed IOVA if it is free (-EEXIST over
 * an area, -EINVAL over a reserved range), else the lowest hole, aligned as iopt_alloc_iova aligns:
 * roundup_pow_of_two(length), capped by the alignment of `hint` (the file offset or user address)
 * so that a huge page on one side can be one on the other. Returns the IOVA or -errno.
 */
function placeArea(ioas: Ioas, length: number, fixedIova: number | null, hint: number): number {
  if (ioas.destroyed) return -E.ENOENT;
  if (fixedIova !== null) {
    const o = overlaps(ioas, fixedIova, length);
    return o ? (o === 'area' ? -E.EEXIST : -E.EINVAL) : fixedIova;
  }
  let align = 2 ** Math.ceil(Math.log2(length));
  if (hint) align = Math.min(align, lowestBit(hint));
  return allocIova(ioas, length, Math.max(align, PAGE_SIZE)) ?? -E.ENOSPC;
}

/**
 * IOMMU_IOAS_MAP of user memory (iopt_map_user_pages): pin the caller's pages (mm/gup.ts: -EFAULT
 * for a hole or a BAR mapping), place the area and map each page into the domain. Page-aligned
 * user_va, length and IOVA only (iommufd also maps a sub-page offset; the model does not).
 */
export function* iopt_map_user_pages(k: Kernel, ioas: Ioas, mm: MmStruct, uptr: number, length: number, fixedIova: number | null, flags: number): KGen<number> {
  if (length === 0 || uptr % PAGE_SIZE || length % PAGE_SIZE || (fixedIova !== null && fixedIova % PAGE_SIZE)) return -E.EINVAL;
  if (fixedIova !== null && fixedIova + length - 1 > U64_MAX) return -E.EOVERFLOW;
  const pfns = yield* pin_user_pages(k, mm, uptr, length / PAGE_SIZE, !!(flags & IOMMU_IOAS_MAP_WRITEABLE));
  if (typeof pfns === 'number') return pfns;
  const pages = new IoptUserPages(k, k.nextId('iopt_pages'), mm, uptr, pfns);
  return yield* iopt_map_common(k, ioas, pages, length, fixedIova, uptr, flags, function* () {
    pages.released = true; // unpin
  }, function* (area) {
    yield ev('iommu_map', ioas.domain.key);
    pfns.forEach((pfn, i) => ioas.domain.map({ iova: area.iova + i * PAGE_SIZE, len: PAGE_SIZE, pa: pfn * PAGE_SIZE, prot: area.prot }));
    area.filled = true;
    k.note(`${ioas.name}: iova ${hex(area.iova)}+${hex(length)} -> user va ${hex(uptr)} (${pfns.length} pinned page(s))`);
  });
}

/**
 * iopt_map_common: place an area for `pages` under iova_rwsem (for write), link it to the pages
 * under their mutex and fill the domain (`fill`); if no IOVA can be had, release the pages. Returns
 * the IOVA or -errno.
 */
function* iopt_map_common(k: Kernel, ioas: Ioas, pages: IoptPages | IoptUserPages, length: number, fixedIova: number | null, hint: number, flags: number, release: () => KGen, fill: (area: IoptArea) => KGen): KGen<number> {
  yield* ioas.iova_rwsem.down_write();
  const iova = placeArea(ioas, length, fixedIova, hint);
  if (iova < 0) {
    yield* ioas.iova_rwsem.up_write();
    yield* release();
    return iova;
  }
  const area = new IoptArea(ioas, iova, length, pages, convProt(flags));
  yield ev('area_insert', `${ioas.domain.key}.areas`);
  ioas.areas.push(area);
  ioas.areas.sort((a, b) => a.iova - b.iova);
  yield* pages.mutex.lock();
  pages.areas.add(area);
  yield* fill(area);
  yield* pages.mutex.unlock();
  yield* ioas.iova_rwsem.up_write();
  return iova;
}

/**
 * IOMMU_IOAS_MAP_FILE's pages (iopt_map_file_pages, drivers/iommu/iommufd/io_pagetable.c), in its
 * order: a length of 0 -EINVAL and start + length - 1 past U64_MAX -EOVERFLOW, before the fd is
 * looked at; then the fd (dma_buf_get, else fget: -EBADF), and the file's pages (iopt_map_file).
 */
export function* iopt_map_file_pages(k: Kernel, ioas: Ioas, caller: Process, fd: number, start: bigint, length: bigint, fixedIova: number | null, flags: number): KGen<number> {
  if (length === 0n) return -E.EINVAL;
  if (start + length - 1n > (1n << 64n) - 1n) return -E.EOVERFLOW;
  const file = yield* caller.files.fget(k, fd);
  if (typeof file === 'number') return file;
  return yield* iopt_map_file(k, ioas, file, Number(start), Number(length), fixedIova, flags);
}

/**
 * The pages of a file already looked up, and the area (a DMABUF: iopt_alloc_dmabuf_pages, then
 * iopt_map_common). `file` carries the caller's reference, which the new pages keep on success and
 * which is dropped on failure. Returns the IOVA or -errno. A file that is not a DMABUF would go down
 * the memfd path, which the model does not have: -EINVAL.
 */
export function* iopt_map_file(k: Kernel, ioas: Ioas, file: File, start: number, length: number, fixedIova: number | null, flags: number): KGen<number> {
  if (!isDmaBufFile(file)) {
    yield* fput(k, file);
    return -E.EINVAL;
  }
  const pages = yield* iopt_alloc_dmabuf_pages(k, file, start, length);
  if (typeof pages === 'number') {
    yield* fput(k, file);
    return pages;
  }
  // iopt_map_common: alignment to the domain's page size, then place the area
  let err = 0;
  if (start % PAGE_SIZE || length % PAGE_SIZE || (fixedIova !== null && fixedIova % PAGE_SIZE)) err = -E.EINVAL;
  else if (fixedIova !== null && fixedIova + length - 1 > U64_MAX) err = -E.EOVERFLOW;
  if (err) {
    yield* iopt_release_pages(k, pages);
    return err;
  }
  return yield* iopt_map_common(k, ioas, pages, length, fixedIova, start, flags, () => iopt_release_pages(k, pages), function* (area) {
    // iopt_area_fill_domain: under pages->mutex, skipped for revoked pages
    if (!pages.revoked || k.mut('iommufd-fill-ignores-revoke')) {
      yield ev('iommu_map', ioas.domain.key);
      ioas.domain.map({ iova: area.iova, len: length, pa: pages.phys.paddr + pages.start, prot: area.prot });
      area.filled = true;
      k.note(`${ioas.name}: iova ${hex(area.iova)}+${hex(length)} -> pa ${hex(pages.phys.paddr + pages.start)} (dmabuf${pages.dmabuf.id})`);
    } else k.note(`${ioas.name}: iova ${hex(area.iova)}+${hex(length)} placed but not mapped: dmabuf${pages.dmabuf.id} was revoked meanwhile`);
  });
}

/**
 * IOMMU_IOAS_UNMAP (iopt_unmap_iova_range): every area inside [iova, iova + length) goes; an area
 * only partly inside is -ENOENT, and so is a range with no area. Translations of revoked areas are
 * already gone. Pages no area uses any more are released (unpin, detach, dma_buf_put) after the
 * IOAS lock is dropped. Returns the bytes unmapped.
 */
export function* iopt_unmap_iova_range(k: Kernel, ioas: Ioas, iova: number, last: number): KGen<number> {
  yield* ioas.iova_rwsem.down_write();
  yield ev('area_lookup', `${ioas.domain.key}.areas`, 'r');
  const hit = ioas.areas.filter((a) => a.iova <= last && iova <= a.last);
  if (!hit.length || hit.some((a) => a.iova < iova || a.last > last)) {
    yield* ioas.iova_rwsem.up_write();
    return -E.ENOENT;
  }
  const release: Array<IoptPages | IoptUserPages> = [];
  let unmapped = 0;
  for (const area of hit) {
    const pages = area.pages;
    yield* pages.mutex.lock();
    if (area.filled) {
      yield ev('iommu_unmap', ioas.domain.key);
      ioas.domain.unmap(area.iova, area.length);
      area.filled = false;
    }
    pages.areas.delete(area);
    if (!pages.areas.size) release.push(pages);
    yield* pages.mutex.unlock();
    yield ev('area_remove', `${ioas.domain.key}.areas`);
    ioas.areas.splice(ioas.areas.indexOf(area), 1);
    unmapped += area.length;
    k.note(`${ioas.name}: area iova ${hex(area.iova)}+${hex(area.length)} removed`);
  }
  yield* ioas.iova_rwsem.up_write();
  for (const pages of release) {
    if (pages instanceof IoptPages) yield* iopt_release_pages(k, pages);
    else {
      pages.released = true; // unpin_user_pages: the RAM stays the process's
      k.note(`${ioas.name}: ${pages.pfns.length} user page(s) from va ${hex(pages.uptr)} unpinned`);
    }
  }
  return unmapped;
}

export type DmaResult = { ok: true; value: bigint } | { fault: string };
/** What a DMA goes through: an IOAS's domain, or a legacy container's type1 domain (vfio/vfio_iommu_type1.ts). */
export interface DmaTarget {
  domain: IommuDomain;
  name: string;
}

/**
 * A peer device's DMA through the IOAS's domain: the IOMMU translates (no translation, or one
 * without the needed permission, is an IOMMU fault and the transaction is dropped), and the
 * translated access reaches the bus as a CPU access would, so decode-enabled applies to it.
 * Translation and access are one step: the device's transaction cannot be split by a domain update.
 */
export function* peer_dma(k: Kernel, ioas: DmaTarget, iova: number, width: number, write: boolean, value: bigint): KGen<DmaResult> {
  // the event names the translation and what it reaches
  yield* announceTarget(
    () => {
      const t = ioas.domain.lookup(iova, width);
      return t ? t.pa + (iova - t.iova) : -1;
    },
    (pa) => {
      const a = pa < 0 ? { also: [], spans: [] } : k.pci.accessEv(pa, width, write);
      return ev(write ? 'dma_write' : 'dma_read', ioas.domain.key, 'r', a.also, a.spans);
    },
  );
  // the device sees only its domain: a destroyed IOAS has an empty one
  const t = ioas.domain.lookup(iova, width);
  if (!t) {
    k.note(`${ioas.name}: IOMMU fault, no translation for iova ${hex(iova)}`);
    return { fault: `IOMMU fault at iova ${hex(iova)} (no translation)` };
  }
  if (!(t.prot & (write ? PROT_WRITE : PROT_READ))) return { fault: `IOMMU fault at iova ${hex(iova)} (${write ? 'write to a read-only' : 'read of a write-only'} mapping)` };
  const pa = t.pa + (iova - t.iova);
  const v = k.pci.cpuAccess(pa, width, write, value, `peer DMA ${write ? 'write to' : 'read from'} ${ioas.name} iova ${hex(iova)}`);
  return { ok: true, value: v };
}

/** Destroy an IOAS (IOMMU_DESTROY, or the iommufd file's release): unmap everything. */
export function* ioas_destroy(k: Kernel, ioas: Ioas): KGen {
  yield* ioas.iova_rwsem.down_write();
  ioas.destroyed = true;
  const any = ioas.areas.length > 0;
  yield* ioas.iova_rwsem.up_write();
  if (any) yield* iopt_unmap_iova_range(k, ioas, 0, U64_MAX);
}
