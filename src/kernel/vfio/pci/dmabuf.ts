// drivers/vfio/pci/vfio_pci_dmabuf.c as the series v4 leaves it: the DMABUF behind every BAR mmap
// and every exported slice, find_pfn, the revoke state machine, cleanup and release, and the three
// DMA_BUF device features.
import type { Kernel } from '../../kernel.ts';
import type { Process } from '../../process.ts';
import { Completion, ev, type KGen } from '../../sched/sched.ts';
import * as R from '../../../uapi/pci_regs.ts';
import { fput, type File } from '../../fs/file.ts';
import { unmap_mapping_range } from '../../mm/memory.ts';
import type { Vma } from '../../mm/vma.ts';
import {
  dma_buf_export, dma_buf_fd, dma_buf_get, dma_buf_get_file_active, dma_buf_invalidate_mappings, setDmaBufName, type DmaBuf, type DmaBufAttachment,
  type DmaBufOps, type SgTable,
} from '../../dma-buf/dma-buf.ts';
import { vfio_check_feature, vfio_device_put_registration, vfio_device_try_get_registration } from '../vfio_main.ts';
import type { VfioPciCoreDevice } from './core.ts';
import { E } from '../../../uapi/errno.ts';
import { O_CLOEXEC, O_RDWR, PAGE_SIZE } from '../../../uapi/mman.ts';
import { decode, type Layout, type StructValue } from '../../../uapi/struct.ts';
import {
  VFIO_DEVICE_FEATURE_DMA_BUF_MEMATTR_NC, VFIO_DEVICE_FEATURE_DMA_BUF_MEMATTR_WC, VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_SET, VFIO_PCI_OFFSET_MASK, VFIO_PCI_OFFSET_SHIFT, VFIO_PCI_ROM_REGION_INDEX, vfio_device_feature_dma_buf,
  vfio_device_feature_dma_buf_memattr, vfio_device_feature_dma_buf_revoke, vfio_region_dma_range,
} from '../../../uapi/vfio.ts';

export const enum Status {
  OK = 0,
  TEMP_REVOKED = 1,
  PERM_REVOKED = 2,
}
export const STATUS_NAME = ['OK', 'TEMP_REVOKED', 'PERM_REVOKED'] as const;

export interface PhysVec {
  paddr: number;
  len: number;
}

/** struct vfio_pci_dma_buf */
export class VfioPciDmaBuf {
  dmabuf!: DmaBuf;
  vdev: VfioPciCoreDevice | null;
  onList = false;
  /** base reference + one per importer mapping */
  kref = 1;
  comp: Completion;
  /** the VFIO device file a BAR-mmap buffer owns (moved from the VMA); null for exported buffers */
  vfile: File | null = null;
  /** v8: the buffer's file is held by the BAR VMAs that keep the device file (vm_ops open/close) */
  vma_holds_dmabuf = false;
  memattr = VFIO_DEVICE_FEATURE_DMA_BUF_MEMATTR_NC;
  status = Status.OK;
  freed = false;
  /** its release has begun: the registration it drops last is no longer its to keep */
  released = false;
  /** model bookkeeping: between publishing a revoked status and the end of its zap */
  revoking = false;
  constructor(
    readonly k: Kernel,
    vdev: VfioPciCoreDevice,
    readonly size: number,
    readonly phys_vec: PhysVec[],
    /** in pages: what find_pfn subtracts from vm_pgoff (the BAR page offset of a BAR mmap) */
    readonly vma_pgoff_adjust: number,
    /** the BAR this buffer slices, for names and provider lookup */
    readonly bar: number,
    readonly kind: 'bar-mmap' | 'exported',
  ) {
    this.vdev = vdev;
    this.comp = new Completion(k.sched, `${vdev.name}.dmabuf-comp`);
  }
  get nr_ranges(): number {
    return this.phys_vec.length;
  }
  /** lock-free state the fault handler and features read with READ_ONCE */
  get key(): string {
    return `dmabuf${this.dmabuf.id}.priv`;
  }
  /** the importer count (kref) and its completion's re-arm: apart from the status and device pointer */
  get krefKey(): string {
    return `${this.key}.kref`;
  }
}

const mod = (a: number, m: number) => ((a % m) + m) % m;
const PGOFF_MASK_PAGES = 2 ** (VFIO_PCI_OFFSET_SHIFT - 12);

/**
 * vfio_pci_dma_buf_find_pfn: which PFN backs `addr` at `order` in this VMA, 0 on success, -EAGAIN
 * (v6 on: -ERANGE) to fall back to a smaller order, -EFAULT for an order-0 miss (SIGBUS). Byte 0 of
 * the buffer is the VMA's first byte once vma_pgoff_adjust is taken off vm_pgoff. In v4 the adjust
 * is the in-BAR page offset and the 40-bit mask strips the region index a BAR mmap keeps in
 * vm_pgoff; from v6 the adjust is the whole vm_pgoff and nothing is masked.
 */
export function findPfn(k: Kernel, priv: VfioPciDmaBuf, vma: Vma, addr: number, order: number): { ret: number; pfn: number } {
  const pagesize = PAGE_SIZE * 2 ** order;
  const fallback = k.variant.findPfnErange ? -E.ERANGE : -E.EAGAIN;
  // ((vm_pgoff - adjust) << PAGE_SHIFT), masked in v4; exact in doubles
  const adjust = k.mut('M12') ? 0 : priv.vma_pgoff_adjust;
  const vmaOff = (k.variant.findPfnErange ? vma.vm_pgoff - adjust : mod(vma.vm_pgoff - adjust, PGOFF_MASK_PAGES)) * PAGE_SIZE;
  const rounded = addr - (addr % pagesize);
  const roundedEnd = rounded + pagesize;
  // M13: an earlier version refused (WARNed on) a VMA whose pgoff no longer equals the adjust: a split
  if (k.mut('M13') && mod(vma.vm_pgoff - priv.vma_pgoff_adjust, PGOFF_MASK_PAGES) !== 0) return { ret: -E.EFAULT, pfn: 0 };
  if (rounded < vma.vm_start || roundedEnd > vma.vm_end) {
    if (order > 0 && !k.mut('M9')) return { ret: fallback, pfn: 0 };
    if (order === 0) {
      k.note(`find_pfn: fault addr 0x${addr.toString(16)} outside VMA`);
      return { ret: -E.EFAULT, pfn: 0 };
    }
  }
  const off = rounded - vma.vm_start + vmaOff;
  const offEnd = off + pagesize;
  if (offEnd > 2 ** 64) return { ret: -E.EFAULT, pfn: 0 };
  let rangeStart = 0;
  for (const r of priv.phys_vec) {
    if (offEnd <= rangeStart) break;
    const inside = k.mut('M11') ? off >= rangeStart && off < rangeStart + r.len : off >= rangeStart && offEnd <= rangeStart + r.len;
    if (inside) {
      const pfn = (off - rangeStart + r.paddr) / PAGE_SIZE;
      if (pfn % 2 ** order === 0 || k.mut('M10')) return { ret: 0, pfn: Math.floor(pfn) };
      break;
    }
    rangeStart += r.len;
  }
  if (order === 0) {
    k.note(`find_pfn: no range for addr 0x${addr.toString(16)} size 0x${pagesize.toString(16)}`);
    return { ret: -E.EFAULT, pfn: 0 };
  }
  return { ret: fallback, pfn: 0 };
}

/** find_pfn's "try a smaller order" return (v4: -EAGAIN, from v6: -ERANGE): VM_FAULT_FALLBACK. */
export const findPfnFallsBack = (ret: number) => ret === -E.EAGAIN || ret === -E.ERANGE;

/** Reference translation for the invariants: the physical address of buffer offset `off`. */
export function bufferPhys(priv: VfioPciDmaBuf, off: number): { pa: number; range: number } | null {
  let rs = 0;
  for (let i = 0; i < priv.phys_vec.length; i++) {
    const r = priv.phys_vec[i];
    if (off >= rs && off < rs + r.len) return { pa: r.paddr + (off - rs), range: i };
    rs += r.len;
  }
  return null;
}
/** The buffer offset of the VMA's first byte (independent of findPfn, for the invariants). */
export function vmaBufferOffset(priv: VfioPciDmaBuf, vma: Vma): number {
  return mod(vma.vm_pgoff - priv.vma_pgoff_adjust, PGOFF_MASK_PAGES) * PAGE_SIZE;
}

const vfio_pci_dmabuf_ops: DmaBufOps = {
  owner: 'vfio-pci',
  /** vfio_pci_dma_buf_attach: P2P only, not revoked, and the importer must handle revocation */
  *attach(k, dmabuf, attach) {
    const priv = dmabuf.priv as VfioPciDmaBuf;
    if (!attach.peer2peer) return -E.EOPNOTSUPP;
    if (priv.status !== Status.OK) return -E.ENODEV;
    if (!attach.importer_ops?.invalidate_mappings) return -E.EOPNOTSUPP;
    return 0;
  },
  map_dma_buf: vfio_pci_dma_buf_map,
  unmap_dma_buf: vfio_pci_dma_buf_unmap,
  *release(k, dmabuf) {
    yield* vfio_pci_dma_buf_release(k, dmabuf.priv as VfioPciDmaBuf);
  },
  *mmap(k, dmabuf, vma) {
    return yield* vfio_pci_dma_buf_mmap(k, dmabuf.priv as VfioPciDmaBuf, vma);
  },
};
/**
 * Without CONFIG_VFIO_PCI_DMABUF the ops of v4 have neither .attach nor .mmap; map/unmap/release
 * remain. From v6 an .attach stays, and refuses every importer (-EOPNOTSUPP). No fd is handed out in
 * that configuration, so only an importer that finds a BAR-mmap buffer some other way reaches them.
 */
const vfio_pci_dmabuf_ops_nodmabuf: DmaBufOps = {
  owner: 'vfio-pci', map_dma_buf: vfio_pci_dma_buf_map, unmap_dma_buf: vfio_pci_dma_buf_unmap, release: vfio_pci_dmabuf_ops.release,
};
const vfio_pci_dmabuf_ops_nodmabuf_v6: DmaBufOps = {
  ...vfio_pci_dmabuf_ops_nodmabuf,
  *attach() {
    return -E.EOPNOTSUPP;
  },
};

/**
 * vfio_pci_dma_buf_map (map_dma_buf, resv held; drivers/vfio/pci/vfio_pci_dmabuf.c): -ENODEV unless
 * OK; the table lists the buffer's ranges (the model maps peer-to-peer by bus address, the
 * through-a-switch case, so no IOVA is allocated and no distance check fails); each mapping holds a
 * kref, which is what a revoker waits on.
 */
function* vfio_pci_dma_buf_map(k: Kernel, attach: DmaBufAttachment): KGen<SgTable | number> {
  const priv = attach.dmabuf.priv as VfioPciDmaBuf;
  if (attach.dmabuf.resv.owner !== k.sched.cur()) k.violation('lifetime', `map_dma_buf on dmabuf${attach.dmabuf.id} without its resv lock`);
  if (priv.status !== Status.OK) return -E.ENODEV;
  const sgt: SgTable = { ranges: priv.phys_vec.map((r) => ({ addr: r.paddr, len: r.len })) };
  if (!k.mut('importer-map-no-kref')) yield* kref_get(k, priv);
  k.note(`dmabuf${attach.dmabuf.id} mapped for ${attach.importer} (kref ${priv.kref})`);
  return sgt;
}

/** vfio_pci_dma_buf_unmap (unmap_dma_buf, resv held): free the table, drop the mapping's kref. */
function* vfio_pci_dma_buf_unmap(k: Kernel, attach: DmaBufAttachment, _sgt: SgTable): KGen {
  const priv = attach.dmabuf.priv as VfioPciDmaBuf;
  if (attach.dmabuf.resv.owner !== k.sched.cur()) k.violation('lifetime', `unmap_dma_buf on dmabuf${attach.dmabuf.id} without its resv lock`);
  yield* kref_put(k, priv);
  k.note(`dmabuf${attach.dmabuf.id} unmapped by ${attach.importer} (kref ${priv.kref})`);
}

/** Every ops table VFIO exports with (the configuration and the version pick one). */
const VFIO_PCI_DMABUF_OPS = new Set<DmaBufOps>([vfio_pci_dmabuf_ops, vfio_pci_dmabuf_ops_nodmabuf, vfio_pci_dmabuf_ops_nodmabuf_v6]);

export function isVfioDmaBuf(dmabuf: DmaBuf): boolean {
  return VFIO_PCI_DMABUF_OPS.has(dmabuf.ops);
}

/**
 * vfio_pci_dmabuf_export: take a registration, export, and publish the initial status and list
 * membership: in v4 under memory_lock and the resv lock, from the memory-enable state; from v6
 * under dmabuf_lock and the resv lock, from the shadow bars_revoked (no memory_lock: mmap() calls
 * this under mmap_lock, and a fault holding memory_lock waits for mmap_lock: the v5 deadlock).
 */
export function* vfio_pci_dmabuf_export(k: Kernel, vdev: VfioPciCoreDevice, priv: VfioPciDmaBuf, flags: number): KGen<number> {
  if (!(yield* vfio_device_try_get_registration(k, vdev.vfio))) return -E.ENODEV;
  const ops = k.config.VFIO_PCI_DMABUF ? vfio_pci_dmabuf_ops : k.variant.attachRefusedWithoutConfig ? vfio_pci_dmabuf_ops_nodmabuf_v6 : vfio_pci_dmabuf_ops_nodmabuf;
  priv.dmabuf = yield* dma_buf_export(k, ops, priv.size, flags, priv);
  priv.kref = 1;
  priv.comp = new Completion(k.sched, `dmabuf${priv.dmabuf.id}.comp`);
  if (k.variant.dmabufLock) {
    // M21 puts the v4/v5 memory_lock back around it
    if (k.mut('M21')) yield* vdev.memory_lock.down_write();
    yield* vdev.dmabuf_lock.down_write();
    yield* priv.dmabuf.resv.lock();
    priv.status = vdev.bars_revoked ? Status.TEMP_REVOKED : Status.OK;
    vdev.dmabufs.push(priv);
    priv.onList = true;
    yield* priv.dmabuf.resv.unlock();
    yield* vdev.dmabuf_lock.up_write();
    if (k.mut('M21')) yield* vdev.memory_lock.up_write();
  } else {
    if (k.mut('M3')) {
      // RFC v2: the initial state was computed before taking memory_lock, so it can be stale
      yield ev('read_memory_enabled', vdev.pdev.decodeKey, 'r', undefined, [vdev.vconfigSpan(R.PCI_COMMAND, 2, 'r')]);
      const enabled = vdev.memoryEnabled();
      yield* vdev.memory_lock.down_write();
      yield* priv.dmabuf.resv.lock();
      priv.status = enabled ? Status.OK : Status.TEMP_REVOKED;
    } else {
      yield* vdev.memory_lock.down_write();
      yield* priv.dmabuf.resv.lock();
      priv.status = vdev.memoryEnabled() ? Status.OK : Status.TEMP_REVOKED;
    }
    vdev.dmabufs.push(priv);
    priv.onList = true;
    yield* priv.dmabuf.resv.unlock();
    yield* vdev.memory_lock.up_write();
  }
  k.note(`${priv.dmabuf.path()} dmabuf${priv.dmabuf.id} exported (${STATUS_NAME[priv.status]}), ${priv.nr_ranges} range(s), 0x${priv.size.toString(16)} bytes`);
  return 0;
}

/**
 * vfio_pci_core_mmap_prep_dmabuf: a one-range DMABUF for exactly the mapped span; the VMA's file
 * reference to the VFIO device file moves into the buffer and the VMA takes the buffer's file.
 */
export function* vfio_pci_core_mmap_prep_dmabuf(k: Kernel, vdev: VfioPciCoreDevice, vma: Vma, barStart: number, reqLen: number, index: number): KGen<number> {
  const vmaPgoff = mod(vma.vm_pgoff, PGOFF_MASK_PAGES);
  // M24: v4's adjust (the in-BAR page offset) with the later find_pfn, which no longer masks
  const adjust = k.variant.findPfnErange && !k.mut('M24') ? vma.vm_pgoff : vmaPgoff;
  const phys = { paddr: barStart + vmaPgoff * PAGE_SIZE, len: reqLen };
  if (!vdev.provider(index)) return -E.EINVAL;
  const priv = new VfioPciDmaBuf(k, vdev, phys.len, [phys], adjust, index, 'bar-mmap');
  // patch 06: "<vfio device name>:<PCI BDF>/<BAR index in hex>", e.g. vfio0:0000:3b:00.0/2
  const name = `${vdev.vfio.devName}:${vdev.pdev.desc.bdf}/${index.toString(16)}`;
  const v8 = k.variant.barVmaKeepsDeviceFile;
  const r = yield* vfio_pci_dmabuf_export(k, vdev, priv, v8 ? O_RDWR : O_CLOEXEC | O_RDWR);
  if (r < 0) return r;
  if (v8) {
    // the VMA keeps the device file; the export's reference to the buffer's file is the VMA's
    priv.vma_holds_dmabuf = true;
    vma.vm_private_data = priv;
    return 0;
  }
  const devFile = vma.vm_file!;
  if (k.mut('no-vfile')) {
    // The buffer does not own the device file: the VMA's reference is simply dropped.
    yield* fput(k, devFile);
  } else priv.vfile = devFile;
  vma.vm_file = priv.dmabuf.file;
  vma.vm_private_data = priv;
  setDmaBufName(priv.dmabuf, name);
  return 0;
}

/** vfio_pci_dma_buf_mmap (patch 08): mmap of an exported DMABUF fd. */
function* vfio_pci_dma_buf_mmap(k: Kernel, priv: VfioPciDmaBuf, vma: Vma): KGen<number> {
  if (!k.variant.dmabufMmap) return -E.EINVAL; // before patch 08: no .mmap op, dma_buf_mmap_internal says -EINVAL
  if (k.variant.barVmaKeepsDeviceFile && priv.vma_pgoff_adjust !== 0) return -E.EINVAL; // v8: a BAR-mmap buffer
  yield ev('READ_ONCE(status)', priv.key, 'r');
  if (k.mut('M18') ? priv.status === Status.PERM_REVOKED : priv.status !== Status.OK) return -E.ENODEV;
  if (!vma.flags.shared) return -E.EINVAL;
  vma.cache = priv.memattr === VFIO_DEVICE_FEATURE_DMA_BUF_MEMATTR_WC ? 'WC' : 'UC';
  vma.flags.pfnmap = true;
  vma.vm_private_data = priv;
  vma.vm_ops = priv.k.vfioPciMmapOps;
  return 0;
}

/**
 * vfio_pci_dma_buf_set_status: the per-buffer state machine. Caller holds memory_lock for write
 * (v4), or dmabuf_lock for write (v6 on). Revoking drains importers (invalidate, wait for their
 * unmaps through the kref/completion) and then zaps every user PTE of the buffer's file;
 * PERM_REVOKED is absorbing.
 */
export function* vfio_pci_dma_buf_set_status(k: Kernel, priv: VfioPciDmaBuf, next: Status): KGen {
  const owner = priv.vdev;
  if (k.variant.dmabufLock && owner && !owner.dmabuf_lock.heldBy(k.sched.cur(), 'w'))
    k.violation('no-deadlock', `set_status on dmabuf${priv.dmabuf.id} without ${owner.name}'s dmabuf_lock held for write (lockdep_assert_held_write)`);
  yield ev('READ(status)', priv.key, 'r');
  if ((priv.status === Status.PERM_REVOKED && !k.mut('M7')) || priv.status === next) return;
  yield* priv.dmabuf.resv.lock();
  const wasRevoked = priv.status === Status.TEMP_REVOKED;
  if (next !== Status.OK) {
    yield ev('WRITE(status)', priv.key);
    priv.status = next;
    priv.revoking = true;
    k.note(`dmabuf${priv.dmabuf.id} status -> ${STATUS_NAME[next]}`);
    if (wasRevoked && !k.mut('M6')) {
      // TEMP -> PERM: already drained
      priv.revoking = false;
      yield* priv.dmabuf.resv.unlock();
      return;
    }
    yield* dma_buf_invalidate_mappings(k, priv.dmabuf);
    yield* priv.dmabuf.resv.unlock();
    yield* kref_put(k, priv);
    yield* priv.comp.wait_for_completion();
    if (!k.mut('no-zap')) {
      // M23: the v4 hole [0, size) in a kernel that otherwise has the later code
      const len = k.variant.dmabufZapWholeFile && !k.mut('M23') ? 0 : priv.size;
      yield* unmap_mapping_range(k, priv.dmabuf.file.f_mapping, 0, len);
    }
    if (!k.mut('M5') && !k.mut('M4')) {
      yield ev('kref_init', priv.krefKey, 'w', [{ obj: priv.comp.name, acc: 'w' }]);
      priv.kref = 1;
      priv.comp.reinit();
    }
    priv.revoking = false;
    return;
  }
  // v7.1 (and v3 of the series, mutant M8): an un-revoke tells the importers too
  if (k.variant.unrevokeNotifies || k.mut('M8')) yield* dma_buf_invalidate_mappings(k, priv.dmabuf);
  yield ev('WRITE(status)', priv.key);
  priv.status = Status.OK;
  k.note(`dmabuf${priv.dmabuf.id} status -> OK`);
  yield* priv.dmabuf.resv.unlock();
}

/** kref_get for an importer mapping: the count must not be zero (refcount_t: addition on 0). */
export function* kref_get(k: Kernel, priv: VfioPciDmaBuf): KGen {
  yield ev('kref_get', priv.krefKey, 'w', [{ obj: priv.comp.name, acc: 'w' }]);
  if (priv.kref <= 0) k.violation('lifetime', `kref_get on dmabuf${priv.dmabuf.id} whose count is ${priv.kref} (refcount_t: addition on 0; use-after-free)`);
  priv.kref++;
}

/** kref_put on the buffer's importer count; the release completes `comp`. */
export function* kref_put(k: Kernel, priv: VfioPciDmaBuf): KGen {
  yield ev('kref_put', priv.krefKey, 'w', [{ obj: priv.comp.name, acc: 'w' }]);
  if (--priv.kref < 0) {
    k.violation('lifetime', `kref underflow on dmabuf${priv.dmabuf.id} (refcount_t: underflow; use-after-free)`);
    return;
  }
  if (priv.kref === 0) priv.comp.complete();
}

/** vfio_pci_dma_buf_move: revoke (TEMP) or un-revoke every live buffer. memory_lock held for write. */
export function* vfio_pci_dma_buf_move(k: Kernel, vdev: VfioPciCoreDevice, revoked: boolean): KGen {
  if (!vdev.memory_lock.heldBy(k.sched.cur(), 'w')) k.violation('no-deadlock', `dma_buf_move on ${vdev.name} without memory_lock held for write`);
  const v6 = k.variant.dmabufLock;
  if (v6) {
    yield* vdev.dmabuf_lock.down_write();
    vdev.bars_revoked = revoked;
  }
  for (const priv of [...vdev.dmabufs]) {
    if (!(yield* dma_buf_get_file_active(k, priv.dmabuf))) continue;
    yield* vfio_pci_dma_buf_set_status(k, priv, revoked ? Status.TEMP_REVOKED : Status.OK);
    yield* fput(k, priv.dmabuf.file);
  }
  if (v6) yield* vdev.dmabuf_lock.up_write();
}

/** vfio_pci_dma_buf_cleanup: at close_device, revoke everything and detach from the device. */
export function* vfio_pci_dma_buf_cleanup(k: Kernel, vdev: VfioPciCoreDevice): KGen {
  yield* vdev.memory_lock.down_write();
  yield* vfio_pci_dma_buf_move(k, vdev, true);
  const v6 = k.variant.dmabufLock;
  if (v6) yield* vdev.dmabuf_lock.down_write();
  for (const priv of [...vdev.dmabufs]) {
    if (!(yield* dma_buf_get_file_active(k, priv.dmabuf))) continue;
    if (k.mut('M4')) {
      // before the kref fix: revokes did not re-arm, and cleanup drained again after a revoke had
      // already dropped the base reference
      yield* kref_put(k, priv);
      yield* priv.comp.wait_for_completion();
    }
    vdev.dmabufs.splice(vdev.dmabufs.indexOf(priv), 1);
    priv.onList = false;
    yield ev('WRITE(vdev)', priv.key);
    priv.vdev = null;
    yield* vfio_device_put_registration(k, vdev.vfio);
    yield* fput(k, priv.dmabuf.file);
  }
  if (v6) yield* vdev.dmabuf_lock.up_write();
  yield* vdev.memory_lock.up_write();
}

/** vfio_pci_dma_buf_release: the last reference to the buffer's file is gone. */
function* vfio_pci_dma_buf_release(k: Kernel, priv: VfioPciDmaBuf): KGen {
  yield ev('READ(vdev)', priv.key, 'r');
  priv.released = true;
  const vdev = priv.vdev;
  if (vdev) {
    // the list is memory_lock's in v4, dmabuf_lock's from v6
    const lock = k.variant.dmabufLock ? vdev.dmabuf_lock : vdev.memory_lock;
    yield* lock.down_write();
    if (priv.onList) vdev.dmabufs.splice(vdev.dmabufs.indexOf(priv), 1);
    priv.onList = false;
    yield* lock.up_write();
    yield* vfio_device_put_registration(k, vdev.vfio);
  }
  if (priv.vfile) yield* fput(k, priv.vfile);
  yield ev('kfree', priv.key, 'w', [{ obj: priv.krefKey, acc: 'w' }]);
  priv.freed = true;
}

/** vfio_pci_dma_buf_iommufd_map: the private interconnect; resv held by the caller. */
export function vfio_pci_dma_buf_iommufd_map(attach: DmaBufAttachment): PhysVec | number {
  if (!isVfioDmaBuf(attach.dmabuf)) return -E.EOPNOTSUPP;
  const priv = attach.dmabuf.priv as VfioPciDmaBuf;
  if (priv.status !== Status.OK) return -E.ENODEV;
  if (priv.nr_ranges !== 1) return -E.EOPNOTSUPP;
  return { ...priv.phys_vec[0] };
}

// ---- VFIO_DEVICE_FEATURE_DMA_BUF (11), _REVOKE (13), _MEMATTR (14) ----

const DMA_IOVA_USE_SWIOTLB = 1n << 63n;
const U64_LIMIT = 1n << 64n;
/** the largest kmalloc on x86-64: PAGE_SIZE << MAX_PAGE_ORDER (10) */
const KMALLOC_MAX_SIZE = 4 * 1024 * 1024;

/** vfio_pci_core_feature_dma_buf: validation in the kernel's order, then a new DMABUF fd. */
export function* vfio_pci_core_feature_dma_buf(k: Kernel, p: Process, vdev: VfioPciCoreDevice, flags: number, payload: Uint8Array, argsz: number): KGen<number> {
  if (!k.config.VFIO_PCI_DMABUF) return -E.ENOTTY;
  const hdrsz = vfio_device_feature_dma_buf.size;
  const r = vfio_check_feature(flags, argsz, VFIO_DEVICE_FEATURE_GET, hdrsz);
  if (r !== 1) return r;
  if (payload.length < hdrsz) return -E.EFAULT;
  const h = decode(vfio_device_feature_dma_buf, payload);
  const nr = Number(h.nr_ranges), index = Number(h.region_index);
  if (nr === 0 || Number(h.flags) !== 0) return -E.EINVAL;
  if (index >= VFIO_PCI_ROM_REGION_INDEX || !vdev.barmapOk(index)) return -E.ENODEV;
  // memdup_array_user: the kernel trusts nr_ranges, not argsz. kmalloc refuses more than
  // KMALLOC_MAX_SIZE (-ENOMEM); the copy then faults past the end of what the caller passed (-EFAULT:
  // the model's ioctl argument is the whole user buffer)
  if (nr * vfio_region_dma_range.size > KMALLOC_MAX_SIZE) return -E.ENOMEM;
  if (payload.length < hdrsz + nr * vfio_region_dma_range.size) return -E.EFAULT;
  // u64 arithmetic, exactly (offsets and lengths near 2^64 must overflow as they do in C)
  const ranges: Array<{ offset: bigint; length: bigint }> = [];
  let total = 0n;
  for (let i = 0; i < nr; i++) {
    const d = decode(vfio_region_dma_range, payload, hdrsz + i * vfio_region_dma_range.size);
    const offset = d.offset as bigint, length = d.length as bigint;
    if (length === 0n) return -E.EINVAL;
    if (offset % BigInt(PAGE_SIZE) !== 0n || length % BigInt(PAGE_SIZE) !== 0n) return -E.EINVAL;
    if (total + length >= U64_LIMIT) return -E.EINVAL; // check_add_overflow
    total += length;
    ranges.push({ offset, length });
  }
  if (total >= DMA_IOVA_USE_SWIOTLB) return -E.EINVAL;
  if (!vdev.provider(index)) return -E.EINVAL;
  const bar = vdev.pdev.bar(index)!;
  const start = BigInt(bar.start), end = start + BigInt(bar.size);
  const phys: PhysVec[] = [];
  for (const rg of ranges) {
    if (start + rg.offset >= U64_LIMIT || start + rg.offset + rg.length >= U64_LIMIT) return -E.EOVERFLOW;
    if (start + rg.offset + rg.length > end) return -E.EINVAL;
    phys.push({ paddr: bar.start + Number(rg.offset), len: Number(rg.length) });
  }
  const priv = new VfioPciDmaBuf(k, vdev, Number(total), phys, 0, index, 'exported');
  const openFlags = Number(h.open_flags);
  const e = yield* vfio_pci_dmabuf_export(k, vdev, priv, openFlags);
  if (e < 0) return e;
  return yield* dma_buf_fd(p, priv.dmabuf, openFlags);
}

/** Look up a DMABUF fd for the REVOKE/MEMATTR features: -EBADF, -EINVAL, -ENODEV as documented. */
function* ownBuffer(k: Kernel, p: Process, vdev: VfioPciCoreDevice, fd: number): KGen<VfioPciDmaBuf | number> {
  const dmabuf = yield* dma_buf_get(k, p, fd);
  if (typeof dmabuf === 'number') return dmabuf;
  const priv = dmabuf.priv as VfioPciDmaBuf;
  yield ev('READ_ONCE(vdev)', isVfioDmaBuf(dmabuf) ? priv.key : `dmabuf${dmabuf.id}.priv`, 'r');
  if (!isVfioDmaBuf(dmabuf) || (priv.vdev !== vdev && !k.mut('M20'))) {
    yield* fput(k, dmabuf.file);
    return -E.ENODEV;
  }
  return priv;
}

/**
 * The common start of the SET-only buffer features (REVOKE, MEMATTR): ENOTTY when the feature does
 * not exist, vfio_check_feature, the payload copy, and the buffer lookup. Returns the decoded
 * payload and the buffer (with a file reference to drop), 0 for a successful PROBE, or -errno.
 */
function* bufferFeature(k: Kernel, p: Process, vdev: VfioPciCoreDevice, exists: boolean, flags: number, payload: Uint8Array, argsz: number, layout: Layout): KGen<{ d: StructValue; priv: VfioPciDmaBuf } | number> {
  if (!exists || !k.config.VFIO_PCI_DMABUF) return -E.ENOTTY; // before the patch: an unknown feature
  const r = vfio_check_feature(flags, argsz, VFIO_DEVICE_FEATURE_SET, layout.size);
  if (r !== 1) return r;
  if (payload.length < layout.size) return -E.EFAULT;
  const d = decode(layout, payload);
  const priv = yield* ownBuffer(k, p, vdev, Number(d.dmabuf_fd));
  return typeof priv === 'number' ? priv : { d, priv };
}

/** VFIO_DEVICE_FEATURE_DMA_BUF_REVOKE (patch 09): permanent, absorbing, -EBADFD the second time. */
export function* vfio_pci_core_feature_dma_buf_revoke(k: Kernel, p: Process, vdev: VfioPciCoreDevice, flags: number, payload: Uint8Array, argsz: number): KGen<number> {
  const f = yield* bufferFeature(k, p, vdev, k.variant.featureDmaBufRevoke, flags, payload, argsz, vfio_device_feature_dma_buf_revoke);
  if (typeof f === 'number') return f;
  const { priv } = f;
  const owner = priv.vdev ?? vdev; // M20 may hand us another device's buffer: lock its owner
  // v6 on: memory_lock only for read, so that a hot reset's trylock of it fails (-EBUSY) rather than
  // the whole dev_set waiting behind this revoke's drain; dmabuf_lock for write for set_status
  const v6 = k.variant.dmabufLock;
  if (v6) {
    yield* owner.memory_lock.down_read();
    yield* owner.dmabuf_lock.down_write();
  } else yield* owner.memory_lock.down_write();
  let ret = 0;
  if (priv.status === Status.PERM_REVOKED) ret = -E.EBADFD;
  else yield* vfio_pci_dma_buf_set_status(k, priv, Status.PERM_REVOKED);
  if (v6) {
    yield* owner.dmabuf_lock.up_write();
    yield* owner.memory_lock.up_read();
  } else yield* owner.memory_lock.up_write();
  yield* fput(k, priv.dmabuf.file);
  return ret;
}

/** VFIO_DEVICE_FEATURE_DMA_BUF_MEMATTR (patch 10): NC or WC for later mmaps; no lock, no status check. */
export function* vfio_pci_core_feature_dma_buf_memattr(k: Kernel, p: Process, vdev: VfioPciCoreDevice, flags: number, payload: Uint8Array, argsz: number): KGen<number> {
  const f = yield* bufferFeature(k, p, vdev, k.variant.featureDmaBufMemattr, flags, payload, argsz, vfio_device_feature_dma_buf_memattr);
  if (typeof f === 'number') return f;
  const { d, priv } = f;
  const attr = Number(d.memattr);
  let ret = 0;
  if (attr === VFIO_DEVICE_FEATURE_DMA_BUF_MEMATTR_NC || attr === VFIO_DEVICE_FEATURE_DMA_BUF_MEMATTR_WC) {
    yield ev('WRITE_ONCE(memattr)', priv.key);
    priv.memattr = attr;
  } else ret = k.mut('M19') ? -E.EINVAL : -E.ENOENT;
  yield* fput(k, priv.dmabuf.file);
  return ret;
}

export { VFIO_PCI_OFFSET_MASK };
