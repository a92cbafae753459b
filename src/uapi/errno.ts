// <asm-generic/errno-base.h> and <asm-generic/errno.h> (x86-64 values). Kernel code in the model
// returns -errno, as Linux does; these names are what results print.
export const ERRNO = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, ENOEXEC: 8, EBADF: 9, ECHILD: 10,
  EAGAIN: 11, ENOMEM: 12, EACCES: 13, EFAULT: 14, EBUSY: 16, EEXIST: 17, ENODEV: 19, ENOTDIR: 20,
  EISDIR: 21, EINVAL: 22, ENFILE: 23, EMFILE: 24, ENOTTY: 25, EFBIG: 27, ENOSPC: 28, ESPIPE: 29,
  EROFS: 30, ERANGE: 34, EDEADLK: 35, ENOSYS: 38, EOVERFLOW: 75, EBADFD: 77, EOPNOTSUPP: 95,
  ETIMEDOUT: 110,
} as const;
export type ErrnoName = keyof typeof ERRNO;
const BY_NUMBER = new Map<number, ErrnoName>(Object.entries(ERRNO).map(([k, v]) => [v, k as ErrnoName]));

export function errnoName(n: number): ErrnoName {
  const name = BY_NUMBER.get(Math.abs(n));
  if (!name) throw new Error(`unknown errno ${n}`);
  return name;
}
export function isErrnoName(s: string): s is ErrnoName {
  return Object.hasOwn(ERRNO, s);
}
/** Kernel-style negative error value: `return -E.EINVAL`. */
export const E = ERRNO;
