// drivers/dma-buf/dma-buf.c: export, fds, mmap of a dma-buf fd, attachments and invalidation.
import type { Kernel } from '../kernel.ts';
import type { Process } from '../process.ts';
import { ev, Mutex, type KGen } from '../sched/sched.ts';
import { AddressSpace, File, fput, type FileOps } from '../fs/file.ts';
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
}

export interface DmaBufOps {
  readonly owner: string;
  attach?(k: Kernel, dmabuf: DmaBuf, attach: DmaBufAttachment): KGen<number>;
  release(k: Kernel, dmabuf: DmaBuf): KGen;
  mmap?(k: Kernel, dmabuf: DmaBuf, vma: Vma): KGen<number>;
}

export class DmaBuf {
  name: string | null = null;
  readonly attachments: DmaBufAttachment[] = [];
  readonly resv: Mutex;
  file!: File;
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
  *release(k, file) {
    const dmabuf = file.private_data as DmaBuf;
    yield* dmabuf.ops.release(k, dmabuf);
    k.dmabufs.delete(dmabuf);
  },
};

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
