// <asm-generic/mman-common.h>, <linux/mman.h>, <asm-generic/fcntl.h> values for x86-64.
export const PROT_NONE = 0x0, PROT_READ = 0x1, PROT_WRITE = 0x2, PROT_EXEC = 0x4;
export const MAP_SHARED = 0x01, MAP_PRIVATE = 0x02, MAP_SHARED_VALIDATE = 0x03, MAP_TYPE = 0x0f;
export const MAP_FIXED = 0x10, MAP_ANONYMOUS = 0x20, MAP_FIXED_NOREPLACE = 0x100000;
export const O_RDONLY = 0o0, O_WRONLY = 0o1, O_RDWR = 0o2, O_ACCMODE = 0o3, O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000, O_PATH = 0o10000000;

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
export const PMD_SHIFT = 21, PUD_SHIFT = 30;
export const PMD_ORDER = PMD_SHIFT - PAGE_SHIFT; // 9
export const PUD_ORDER = PUD_SHIFT - PAGE_SHIFT; // 18
export const PMD_SIZE = 2 ** PMD_SHIFT, PUD_SIZE = 2 ** PUD_SHIFT;
/** x86-64 4-level paging: user space ends below 2^47. */
export const TASK_SIZE = 2 ** 47 - PAGE_SIZE;

/** Signals and their si_code values as x86 delivers them for user faults. */
export const SIGBUS = 7, SIGSEGV = 11;
export const SEGV_MAPERR = 1, SEGV_ACCERR = 2, BUS_ADRERR = 2;
