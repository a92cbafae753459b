// <asm-generic/ioctl.h>: the _IOC encoding, computed as the kernel's macros do.
export const _IOC_NRBITS = 8;
export const _IOC_TYPEBITS = 8;
export const _IOC_SIZEBITS = 14;
export const _IOC_NRSHIFT = 0;
export const _IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS;
export const _IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS;
export const _IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS;
export const _IOC_NONE = 0;
export const _IOC_WRITE = 1;
export const _IOC_READ = 2;

export function _IOC(dir: number, type: number, nr: number, size: number): number {
  // >>> 0 keeps the result an unsigned 32-bit number, as the C macro's unsigned arithmetic does.
  return ((dir << _IOC_DIRSHIFT) | (type << _IOC_TYPESHIFT) | (nr << _IOC_NRSHIFT) | (size << _IOC_SIZESHIFT)) >>> 0;
}
export const _IO = (type: number, nr: number) => _IOC(_IOC_NONE, type, nr, 0);
export const _IOC_NR = (req: number) => (req >>> _IOC_NRSHIFT) & ((1 << _IOC_NRBITS) - 1);
export const _IOC_TYPE = (req: number) => (req >>> _IOC_TYPESHIFT) & ((1 << _IOC_TYPEBITS) - 1);
