// fs/eventfd.c, as far as VFIO uses it: eventfd2() makes a file whose context a driver can hold
// (eventfd_ctx_fdget) to signal user space, here the wake-up of a function in runtime low power.
import type { Kernel } from '../kernel.ts';
import type { Process } from '../process.ts';
import { ev, type KGen } from '../sched/sched.ts';
import { AddressSpace, File, fput, type FileOps } from './file.ts';
import { E } from '../../uapi/errno.ts';
import { O_CLOEXEC, O_NONBLOCK, O_RDWR } from '../../uapi/mman.ts';

export class EventfdCtx {
  count: bigint;
  constructor(readonly id: number, initval: number) {
    this.count = BigInt(initval);
  }
}

const eventfd_fops: FileOps = { kind: 'eventfd' };

/** do_eventfd (eventfd2(initval, flags)): EFD_CLOEXEC and EFD_NONBLOCK are O_CLOEXEC and O_NONBLOCK; others EINVAL. */
export function* do_eventfd(k: Kernel, p: Process, initval: number, flags: number): KGen<number> {
  if (flags & ~(O_CLOEXEC | O_NONBLOCK | 1)) return -E.EINVAL; // EFD_SEMAPHORE is 1
  const ctx = new EventfdCtx(k.nextId('eventfd'), initval);
  yield ev('eventfd_alloc', `eventfd${ctx.id}`);
  const f = new File(k.nextId('file'), eventfd_fops, new AddressSpace(`eventfd${ctx.id}`), O_RDWR | (flags & O_NONBLOCK), ctx, 'anon_inode:[eventfd]');
  return yield* p.files.alloc(f, !!(flags & O_CLOEXEC));
}

/**
 * eventfd_ctx_fdget: the context behind an fd, -EBADF if the fd is not open, -EINVAL if it is not an
 * eventfd. The model keeps the context object (its kref is not modelled: nothing frees it).
 */
export function* eventfd_ctx_fdget(k: Kernel, p: Process, fd: number): KGen<EventfdCtx | number> {
  const f = yield* p.files.fget(k, fd);
  if (typeof f === 'number') return -E.EBADF;
  const ctx = f.ops === eventfd_fops ? (f.private_data as EventfdCtx) : null;
  yield* fput(k, f);
  return ctx ?? -E.EINVAL;
}
