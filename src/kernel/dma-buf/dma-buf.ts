// drivers/dma-buf/dma-buf.c: export, fds, mmap of a dma-buf fd, attachments and invalidation, and
// the importer side (dma_buf_dynamic_attach(), dma_buf_invalidate_mappings()): dynamic and static
// attach, detach, map/unmap of an attachment under the resv lock, pin/unpin.
import type { Kernel } from '../kernel.ts';
import type { Process } from '../process.ts';
import { ev, Mutex, type KGen } from '../sched/sched.ts';
import { AddressSpace, File, fput, get_file_active, type FileOps } from '../fs/file.ts';
import type { Vma } from '../mm/vma.ts';
import { E } from '../../uapi/errno.ts';
import { O_ACCMODE, O_CLOEXEC, O_NONBLOCK, PAGE_SIZE } from '../../uapi/mman.ts';

export interface DmaBufAttachOps {
  readonly name: string;
  allow_peer2peer: boolean;
  /** invalidate_mappings (was move_notify): absent for a static, pinning-only importer */
  invalidate_mappings?(k: Kernel, attach: DmaBufAttachment): KGen;
}
export interface DmaBufAttachment {
  dmabuf: DmaBuf;
  importer: string;
  peer2peer: boolean;
  importer_ops: DmaBufAttachOps | null;
  importer_priv: unknown;
  /** model id, for names in notes and events */
  id?: number;
  /** unlinked by dma_buf_detach */
  detached?: boolean;
}

/** An sg_table, reduced to the DMA ranges it lists (bus addresses of the exporter's memory). */
export interface SgTable {
  ranges: Array<{ addr: number; len: number }>;
  /** set by unmap: an sg_table is freed exactly once */
  freed?: boolean;
}

export interface DmaBufOps {
  readonly owner: string;
  /** called without the resv lock; an error refuses the importer */
  attach?(k: Kernel, dmabuf: DmaBuf, attach: DmaBufAttachment): KGen<number>;
  detach?(k: Kernel, dmabuf: DmaBuf, attach: DmaBufAttachment): KGen;
  pin?(k: Kernel, attach: DmaBufAttachment): KGen<number>;
  unpin?(k: Kernel, attach: DmaBufAttachment): KGen;
  /** called with the resv lock held: an sg_table, or -errno */
  map_dma_buf?(k: Kernel, attach: DmaBufAttachment): KGen<SgTable | number>;
  unmap_dma_buf?(k: Kernel, attach: DmaBufAttachment, sgt: SgTable): KGen;
  release(k: Kernel, dmabuf: DmaBuf): KGen;
  mmap?(k: Kernel, dmabuf: DmaBuf, vma: Vma): KGen<number>;
}

export class DmaBuf {
  name: string | null = null;
  readonly attachments: DmaBufAttachment[] = [];
  readonly resv: Mutex;
  file!: File;
  /**
   * References to the buffer's dentry: its file's, and one per O_PATH open of /proc/PID/fd/N. The
   * dma_buf (and the exporter's private data) goes at the last one (dma_buf_release, the dentry's
   * d_release), which may be after its file is freed.
   */
  dentryRefs = 1;
  /** "Annul dmabuf->file": dmabuf->file was set to NULL when the file was released */
  fileAnnulled = false;
  constructor(readonly k: Kernel, readonly id: number, readonly size: number, readonly ops: DmaBufOps, readonly priv: unknown) {
    this.resv = new Mutex(k.sched, `dmabuf${id}.resv`, 'dma_resv');
  }
  /** what /proc/PID/maps shows: dmabuffs_dname() builds "/dmabuf:<name>" */
  path(): string {
    return `/dmabuf:${this.name ?? ''}`;
  }
}

const dma_buf_fops: FileOps = {
  kind: 'dmabuf',
  /** dma_buf_mmap_internal: the size check is the core's; the rest is the exporter's ->mmap */
  *mmap(k, file, vma) {
    const dmabuf = file.private_data as DmaBuf;
    if (!dmabuf.ops.mmap) return -E.EINVAL;
    if (vma.vm_pgoff + vma.pages > dmabuf.size / PAGE_SIZE) return -E.EINVAL;
    return yield* dmabuf.ops.mmap(k, dmabuf, vma);
  },
  *ioctl() {
    return -E.ENOTTY;
  },
  /** dma_buf_file_release, then the file's dput of the dentry */
  *release(k, file) {
    const dmabuf = file.private_data as DmaBuf;
    // (mutant no-annul: the fix's NULLing left out, as on v8 as posted)
    if (k.variant.dmaBufAnnulFile && !k.mut('no-annul')) {
      yield ev('WRITE(dmabuf->file)', `dmabuf${dmabuf.id}.file`);
      dmabuf.fileAnnulled = true;
    }
    yield* dma_buf_dput(k, dmabuf);
  },
};

/** Drop a reference to the buffer's dentry; the last one runs dma_buf_release: the exporter's release. */
export function* dma_buf_dput(k: Kernel, dmabuf: DmaBuf): KGen {
  yield ev('dput', `dmabuf${dmabuf.id}.dentry`);
  if (--dmabuf.dentryRefs > 0) return;
  yield* dmabuf.ops.release(k, dmabuf);
  k.dmabufs.delete(dmabuf);
}

/**
 * get_file_active(&dmabuf->file), as the exporter's walks of its buffers do it: false when the
 * pointer was annulled (NULL) or the count is zero; on a file already freed (its dentry outlived
 * it) the read is a use-after-free.
 */
export function* dma_buf_get_file_active(k: Kernel, dmabuf: DmaBuf): KGen<boolean> {
  yield ev('READ(dmabuf->file)', `dmabuf${dmabuf.id}.file`, 'r');
  if (dmabuf.fileAnnulled) return false;
  if (dmabuf.file.freed) {
    k.violation('lifetime', `use after free: get_file_active on the freed file of dmabuf${dmabuf.id} (${dmabuf.path()}), whose dentry something still holds (KASAN: slab-use-after-free in get_file_active)`);
    return false;
  }
  return yield* get_file_active(k, dmabuf.file);
}

export function isDmaBufFile(f: File): boolean {
  return f.ops === dma_buf_fops;
}

/** dma_buf_export: a new anon-inode file (its own address_space) holding one reference. */
export function* dma_buf_export(k: Kernel, ops: DmaBufOps, size: number, flags: number, priv: unknown): KGen<DmaBuf> {
  yield ev('dma_buf_export', 'dmabuf.list');
  const dmabuf = new DmaBuf(k, k.nextId('dmabuf'), size, ops, priv);
  dmabuf.file = new File(k.nextId('file'), dma_buf_fops, new AddressSpace(`dmabuf${dmabuf.id}`), flags & (O_ACCMODE | O_NONBLOCK), dmabuf, dmabuf.path());
  k.dmabufs.add(dmabuf);
  return dmabuf;
}

export function setDmaBufName(dmabuf: DmaBuf, name: string): void {
  dmabuf.name = name;
  dmabuf.file.path = dmabuf.path();
}

/** dma_buf_fd: the caller's file reference becomes the new fd. */
export function* dma_buf_fd(p: Process, dmabuf: DmaBuf, flags: number): KGen<number> {
  return yield* p.files.alloc(dmabuf.file, !!(flags & O_CLOEXEC));
}

/** dma_buf_get: fget, then -EINVAL if the file is not a dma-buf. */
export function* dma_buf_get(k: Kernel, p: Process, fd: number): KGen<DmaBuf | number> {
  const f = yield* p.files.fget(k, fd);
  if (typeof f === 'number') return f;
  if (!isDmaBufFile(f)) {
    yield* fput(k, f);
    return -E.EINVAL;
  }
  return f.private_data as DmaBuf;
}

/** dma_buf_invalidate_mappings (move_notify): call every dynamic importer; resv must be held. */
export function* dma_buf_invalidate_mappings(k: Kernel, dmabuf: DmaBuf): KGen {
  if (dmabuf.resv.owner !== k.sched.cur()) k.violation('lifetime', `invalidate_mappings on dmabuf${dmabuf.id} without its resv lock`);
  for (const a of [...dmabuf.attachments]) if (a.importer_ops?.invalidate_mappings) yield* a.importer_ops.invalidate_mappings(k, a);
}

/**
 * dma_buf_attach_revocable: a dynamic importer that handles invalidation (Leon Romanovsky's
 * "dma-buf revoke" v5, 2026-01-24).
 */
export function dma_buf_attach_revocable(attach: DmaBufAttachment): boolean {
  return !!attach.importer_ops?.invalidate_mappings;
}

/**
 * dma_buf_dynamic_attach: peer2peer comes from the importer's allow_peer2peer; the exporter's
 * ->attach runs without the resv lock and its error is the caller's; the attachment is linked under
 * the resv lock, from which point invalidate_mappings reaches it. (The revoke series made
 * invalidate_mappings optional for importers that only pin, so importer_ops without it are accepted
 * here and refused, if at all, by the exporter.) The importer keeps its own file reference.
 */
export function* dma_buf_dynamic_attach(k: Kernel, dmabuf: DmaBuf, importer: string, importer_ops: DmaBufAttachOps | null, importer_priv: unknown): KGen<DmaBufAttachment | number> {
  k.checkAlive(dmabuf.file, `dma_buf_attach to dmabuf${dmabuf.id}`);
  const attach: DmaBufAttachment = {
    dmabuf, importer, peer2peer: importer_ops?.allow_peer2peer ?? false, importer_ops, importer_priv, id: k.nextId('dmabuf-attach'),
  };
  if (dmabuf.ops.attach) {
    const r = yield* dmabuf.ops.attach(k, dmabuf, attach);
    if (r < 0) return r;
  }
  yield* dmabuf.resv.lock();
  dmabuf.attachments.push(attach);
  yield* dmabuf.resv.unlock();
  k.note(`${importer} attached to dmabuf${dmabuf.id} (${importer_ops ? 'dynamic' : 'static'}${attach.peer2peer ? ', peer2peer' : ''})`);
  return attach;
}

/** dma_buf_attach: a static importer, no importer_ops, hence peer2peer false. */
export function* dma_buf_attach(k: Kernel, dmabuf: DmaBuf, importer: string): KGen<DmaBufAttachment | number> {
  return yield* dma_buf_dynamic_attach(k, dmabuf, importer, null, null);
}

/** dma_buf_detach: unlink under the resv lock, then the exporter's ->detach without it. */
export function* dma_buf_detach(k: Kernel, attach: DmaBufAttachment): KGen {
  const dmabuf = attach.dmabuf;
  yield* dmabuf.resv.lock();
  const i = dmabuf.attachments.indexOf(attach);
  if (i < 0 || attach.detached) k.violation('lifetime', `dma_buf_detach of an attachment that is not attached to dmabuf${dmabuf.id}`);
  else dmabuf.attachments.splice(i, 1);
  attach.detached = true;
  yield* dmabuf.resv.unlock();
  if (dmabuf.ops.detach) yield* dmabuf.ops.detach(k, dmabuf, attach);
  k.note(`${attach.importer} detached from dmabuf${dmabuf.id}`);
}

function assertResvHeld(k: Kernel, dmabuf: DmaBuf, what: string): void {
  if (dmabuf.resv.owner !== k.sched.cur()) k.violation('lifetime', `${what} on dmabuf${dmabuf.id} without its resv lock`);
}

/** dma_buf_pin: resv held; exporters without ->pin (VFIO) succeed trivially. */
export function* dma_buf_pin(k: Kernel, attach: DmaBufAttachment): KGen<number> {
  assertResvHeld(k, attach.dmabuf, 'dma_buf_pin');
  return attach.dmabuf.ops.pin ? yield* attach.dmabuf.ops.pin(k, attach) : 0;
}
export function* dma_buf_unpin(k: Kernel, attach: DmaBufAttachment): KGen {
  assertResvHeld(k, attach.dmabuf, 'dma_buf_unpin');
  if (attach.dmabuf.ops.unpin) yield* attach.dmabuf.ops.unpin(k, attach);
}

/**
 * dma_buf_map_attachment: resv held. (Pinning for static importers applies only to exporters with
 * ->pin, which VFIO has not; fences are not modelled.)
 */
export function* dma_buf_map_attachment(k: Kernel, attach: DmaBufAttachment): KGen<SgTable | number> {
  assertResvHeld(k, attach.dmabuf, 'dma_buf_map_attachment');
  if (attach.detached) k.violation('lifetime', `map of a detached attachment of dmabuf${attach.dmabuf.id}`);
  if (!attach.dmabuf.ops.map_dma_buf) return -E.EINVAL;
  return yield* attach.dmabuf.ops.map_dma_buf(k, attach);
}

/** dma_buf_unmap_attachment: resv held; the exporter frees the table. */
export function* dma_buf_unmap_attachment(k: Kernel, attach: DmaBufAttachment, sgt: SgTable): KGen {
  assertResvHeld(k, attach.dmabuf, 'dma_buf_unmap_attachment');
  if (sgt.freed) k.violation('lifetime', `double unmap of an sg_table of dmabuf${attach.dmabuf.id}`);
  sgt.freed = true;
  if (attach.dmabuf.ops.unmap_dma_buf) yield* attach.dmabuf.ops.unmap_dma_buf(k, attach, sgt);
}

/** dma_buf_put: the importer's file reference. */
export function* dma_buf_put(k: Kernel, dmabuf: DmaBuf): KGen {
  yield* fput(k, dmabuf.file);
}
