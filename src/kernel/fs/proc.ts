// fs/proc/fd.c and the open of a /proc/self/fd/N link: the link's target is the fd's file's path.
// O_PATH opens a handle on that path (its dentry) without opening the file: nothing but close, dup
// and fstat-like uses go through it, and it keeps the dentry alive, which for a dma-buf keeps the
// dma_buf and its exporter's private data after the file itself is freed. Without O_PATH the target
// is opened again: a character device through its node, an anonymous inode (a dma-buf) not at all
// (no_open: -ENXIO).
import type { Kernel } from '../kernel.ts';
import type { Process } from '../process.ts';
import { ev, type KGen } from '../sched/sched.ts';
import { File, fput, get_file, type FileOps } from './file.ts';
import { dma_buf_dput, isDmaBufFile, type DmaBuf } from '../dma-buf/dma-buf.ts';
import { E } from '../../uapi/errno.ts';
import { O_CLOEXEC, O_PATH } from '../../uapi/mman.ts';

export const PROC_SELF_FD = /^\/proc\/self\/fd\/(\d+)$/;
/** /proc/self/map_files/<start>-<end>: the file of the VMA that spans exactly that range */
export const PROC_SELF_MAP_FILES = /^\/proc\/self\/map_files\/([0-9a-f]+)-([0-9a-f]+)$/;

/** An O_PATH file on a dma-buf's dentry: closing the last reference drops the dentry. */
const dmabufPathOps: FileOps = {
  kind: 'o_path',
  *release(k, file) {
    yield* dma_buf_dput(k, file.private_data as DmaBuf);
  },
};
const pathOps: FileOps = { kind: 'o_path' };

/** An O_PATH file on a path: on a dma-buf's dentry it takes a dentry reference. */
export function* o_path_file(k: Kernel, mapping: File['f_mapping'], path: string, dmabuf: DmaBuf | null): KGen<File> {
  if (dmabuf) {
    yield ev('dget', `dmabuf${dmabuf.id}.dentry`);
    dmabuf.dentryRefs++;
  }
  return new File(k.nextId('file'), dmabuf ? dmabufPathOps : pathOps, mapping, O_PATH, dmabuf, path);
}

/**
 * Open the target of a /proc link, file `f` (the caller holds a reference): with O_PATH a handle on
 * its path (holding a dma-buf's dentry); without it, `reopen` opens a device node again, and an
 * anonymous inode refuses (-ENXIO).
 */
function* open_link_target(k: Kernel, p: Process, f: File, flags: number, reopen: (path: string) => KGen<number>): KGen<number> {
  if (flags & O_PATH) {
    const h = yield* o_path_file(k, f.f_mapping, f.path, isDmaBufFile(f) ? (f.private_data as DmaBuf) : null);
    return yield* p.files.alloc(h, !!(flags & O_CLOEXEC));
  }
  return f.ops.kind === 'vfio-device' ? yield* reopen(f.path) : -E.ENXIO;
}

/**
 * open("/proc/self/map_files/<start>-<end>", flags) (proc_map_files_get_link): under mmap_lock the
 * VMA that spans exactly [start, end), -ENOENT if none, and a reference to its file; then its file
 * opened as a link target (for a BAR mmap of the series v4 to v6, the DMABUF's).
 */
export function* proc_map_files_open(k: Kernel, p: Process, start: number, end: number, flags: number, reopen: (path: string) => KGen<number>): KGen<number> {
  const mm = p.mm;
  yield* mm.mmap_lock.down_read();
  const f = mm.vmas.find((v) => v.vm_start === start && v.vm_end === end)?.vm_file ?? null;
  if (f) yield* get_file(k, f);
  yield* mm.mmap_lock.up_read();
  if (!f) return -E.ENOENT;
  const r = yield* open_link_target(k, p, f, flags, reopen);
  yield* fput(k, f);
  return r;
}

/** open("/proc/self/fd/<fd>", flags): -ENOENT for a closed fd, else the fd's file as a link target. */
export function* proc_fd_open(k: Kernel, p: Process, fd: number, flags: number, reopen: (path: string) => KGen<number>): KGen<number> {
  const f = yield* p.files.fget(k, fd, true);
  if (typeof f === 'number') return -E.ENOENT;
  const r = yield* open_link_target(k, p, f, flags, reopen);
  yield* fput(k, f);
  return r;
}
