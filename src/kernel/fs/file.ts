// struct file, struct address_space, fd tables: fget/fput with deferred release (task_work), as Linux
// defers the last fput of a user task to its return to user space (so ->release never runs under the
// mmap_lock that munmap holds).
import type { Kernel } from '../kernel.ts';
import { announceTarget, ev, type KGen } from '../sched/sched.ts';
import type { MmStruct, Vma } from '../mm/vma.ts';
import { E } from '../../uapi/errno.ts';
import { O_ACCMODE, O_PATH, O_RDONLY, O_RDWR, O_WRONLY } from '../../uapi/mman.ts';

/** A destination in user memory for copy_to_user. */
export interface UserBuf {
  mm: MmStruct;
  va: number;
}

export interface FileOps {
  readonly kind: string;
  mmap?(k: Kernel, file: File, vma: Vma): KGen<number>;
  ioctl?(k: Kernel, file: File, cmd: number, arg: Uint8Array): KGen<number>;
  pread?(k: Kernel, file: File, buf: Uint8Array, off: number, user?: UserBuf): KGen<number>;
  pwrite?(k: Kernel, file: File, buf: Uint8Array, off: number): KGen<number>;
  release?(k: Kernel, file: File): KGen;
}

/** An inode's page-cache mapping; i_mmap holds every VMA that maps the file. */
export class AddressSpace {
  readonly i_mmap = new Set<Vma>();
  constructor(readonly name: string) {}
}

export class File {
  refs = 1;
  freed = false;
  constructor(
    readonly id: number,
    readonly ops: FileOps,
    readonly f_mapping: AddressSpace,
    readonly flags: number,
    public private_data: unknown,
    /** what /proc/PID/maps prints for a VMA of this file */
    public path: string,
  ) {}
  get key(): string {
    return `file${this.id}`;
  }
  get readable(): boolean {
    const m = this.flags & O_ACCMODE;
    return m === O_RDONLY || m === O_RDWR;
  }
  get writable(): boolean {
    const m = this.flags & O_ACCMODE;
    return m === O_WRONLY || m === O_RDWR;
  }
}

/**
 * File reference counts are counter operations: a get, a get_file_active and a put that cannot be
 * the last commute with each other (their events read the count, 'r'); the put that takes it to
 * zero, and anything on a count already at zero, is ordered against them ('w'). A put announced
 * as not the last that finds itself the last (another put ran meanwhile) announces itself again.
 */
const countAcc = (f: File) => (f.refs <= 0 ? 'w' : 'r');

/** get_file: the caller already holds a reference, so the count cannot be zero. */
export function* get_file(k: Kernel, f: File): KGen<File> {
  yield ev('get_file', f.key, countAcc(f));
  k.checkAlive(f, 'get_file');
  if (f.refs <= 0) k.violation('lifetime', `get_file on ${f.path} whose count is ${f.refs}`);
  f.refs++;
  return f;
}

/** get_file_active: take a reference only if the count has not already dropped to zero. */
export function* get_file_active(k: Kernel, f: File): KGen<boolean> {
  yield ev('get_file_active', f.key, countAcc(f));
  k.checkAlive(f, 'get_file_active');
  if (f.refs === 0) return false;
  f.refs++;
  return true;
}

export function* fput(k: Kernel, f: File): KGen {
  yield* announceTarget(() => f.refs <= 1, (last) => ev('fput', f.key, last ? 'w' : 'r'));
  k.checkAlive(f, 'fput');
  if (--f.refs < 0) {
    k.violation('lifetime', `refcount underflow on ${f.path}`);
    return;
  }
  if (f.refs === 0) k.sched.cur().taskWork.push(() => __fput(k, f));
}

/** The deferred half of the last fput: ->release, then the file is gone. */
export function* __fput(k: Kernel, f: File): KGen {
  if (f.ops.release) yield* f.ops.release(k, f);
  yield ev('file_free', f.key);
  f.freed = true;
  k.note(`${f.path} released`);
}

/** A process's file table (shared by its threads). fd numbers start at 3, as 0-2 are stdio. */
export class FdTable {
  readonly fds = new Map<number, { file: File; cloexec: boolean }>();
  constructor(readonly key: string) {}

  *alloc(file: File, cloexec: boolean): KGen<number> {
    yield ev('fd_install', this.key);
    let fd = 3;
    while (this.fds.has(fd)) fd++;
    this.fds.set(fd, { file, cloexec });
    return fd;
  }

  /**
   * fget: look up and take a reference. Returns -EBADF for a closed fd, and for an O_PATH fd unless
   * `path` (an O_PATH file is only a handle on the path: no ioctl, mmap or I/O through it).
   */
  *fget(k: Kernel, fd: number, path = false): KGen<File | number> {
    // one step: the lookup and the reference (__fget_files_rcu: get_file_rcu under rcu_read_lock,
    // rechecked against the table), so a close in another thread cannot come between them
    const f = yield* announceTarget(() => this.fds.get(fd)?.file ?? null, (x) => ev('fget', this.key, 'r', x ? [{ obj: x.key, acc: countAcc(x) }] : undefined));
    if (!f || (!path && f.flags & O_PATH)) return -E.EBADF;
    k.checkAlive(f, 'fget');
    f.refs++;
    return f;
  }

  *close(k: Kernel, fd: number): KGen<number> {
    yield ev('close_fd', this.key);
    const e = this.fds.get(fd);
    if (!e) return -E.EBADF;
    this.fds.delete(fd);
    yield* fput(k, e.file);
    return 0;
  }
}
