// The TypeScript API (README "The TypeScript API"): a kernel built from the same device descriptions as YAML, and
// processes with syscall methods that take the real binary ioctl structs.
import { Kernel, type Violation } from './kernel/kernel.ts';
import type { Process } from './kernel/process.ts';
import type { KGen, Task } from './kernel/sched/sched.ts';
import type { KconfigInput } from './kernel/kconfig.ts';
import {
  sys_close, sys_dup, sys_eventfd2, sys_exit, sys_fork, sys_ioctl, sys_mmap2, sys_munmap2, sys_open, sys_pread, user_access,
} from './kernel/syscalls.ts';
import { checkInvariants, checkNoLeak } from './kernel/invariants.ts';
import { deviceFromSpec } from './scenario/loader.ts';
import { errnoName, type ErrnoName } from './uapi/errno.ts';
import { O_RDWR } from './uapi/mman.ts';
import { valueArg } from './uapi/vfio.ts';

export * as uapi from './uapi/vfio.ts';
/** <linux/iommufd.h>: the /dev/iommu ioctls the model has, their numbers and struct layouts */
export * as iommufdUapi from './uapi/iommufd.ts';
export * as kvmUapi from './uapi/kvm.ts';
export * as mman from './uapi/mman.ts';
export { encode, decode } from './uapi/struct.ts';
export { loadScenarioFile, parseScenario } from './scenario/loader.ts';
export { runScenario } from './scenario/report.ts';
export type { Scenario, Step, ThreadDef, ExpectedFinding } from './scenario/loader.ts';
export type { RunOptions, StepOut, FaultJson } from './scenario/runner.ts';
export type { Result } from './scenario/ops.ts';
export type { RunResult } from './scenario/report.ts';
export type { Violation, LockdepDep } from './kernel/kernel.ts';
export type { DepType } from './kernel/sched/sched.ts';
export type { Kconfig, KconfigInput } from './kernel/kconfig.ts';
export type { Layout, Field, FieldType, StructValue } from './uapi/struct.ts';
export type { PciDevDesc, BarDesc, MsixDesc, PciCaps, CapName } from './kernel/pci/device.ts';
export type { Cache } from './kernel/mm/pgtable.ts';

export class SyscallError extends Error {
  constructor(readonly errno: ErrnoName, readonly call: string) {
    super(`${call}: ${errno}`);
  }
}
export class SignalError extends Error {
  constructor(readonly signal: 'SIGBUS' | 'SIGSEGV', readonly code: string, readonly addr: number) {
    super(`${signal} (${code}) at 0x${addr.toString(16)}`);
  }
}

export interface CreateKernelOptions {
  /** device descriptions as in a scenario's devices: list (profile:, bars:, msix:, …) */
  devices: unknown[];
  config?: KconfigInput;
  kernel?: string;
  mutant?: string;
  /** check the invariants after every call (default true) */
  checkInvariants?: boolean;
}

export class SimKernel {
  /** @internal the modelled kernel itself (its layout is not part of the API) */
  readonly k: Kernel;
  /** @internal the task of the last call: its fault records are what the call's faults were */
  lastTask: Task | null = null;
  constructor(readonly opts: CreateKernelOptions) {
    this.k = new Kernel({ devices: opts.devices.map((d, i) => deviceFromSpec(d, i)), config: opts.config, kernel: opts.kernel, mutant: opts.mutant });
  }
  spawn(name = `p${this.k.procs.length + 1}`): SimProcess {
    return new SimProcess(this, this.k.newProcess(name));
  }
  /** Run one kernel path to completion in a fresh task (a single-threaded caller cannot block). */
  /** @internal */
  run<T>(p: Process, call: string, gen: KGen<T>): T {
    const holder: { v?: T } = {};
    const t = this.k.spawn(p, call, (function* () {
      holder.v = yield* gen;
    })());
    while (!t.done) {
      if (t.blocked) throw new Error(`${call}: blocked forever on ${t.pending.obj} (deadlock)`);
      this.k.sched.step(t);
    }
    this.k.sched.reap(t);
    this.lastTask = t;
    if (this.opts.checkInvariants !== false) checkInvariants(this.k);
    return holder.v as T;
  }
  get violations(): Violation[] {
    return this.k.violations;
  }
  checkNoLeak(): Violation[] {
    checkNoLeak(this.k);
    return this.k.violations;
  }
}

const ok = (r: number, call: string) => {
  if (r < 0) throw new SyscallError(errnoName(r), call);
  return r;
};

export class SimProcess {
  constructor(
    readonly kernel: SimKernel,
    /** @internal */
    readonly proc: Process,
  ) {}
  private sys(call: string, gen: KGen<number>): number {
    return ok(this.kernel.run(this.proc, call, gen), call);
  }
  get pid(): number {
    return this.proc.pid;
  }
  open(path: string, flags = O_RDWR): number {
    return this.sys('open', sys_open(this.kernel.k, this.proc, path, flags));
  }
  close(fd: number): void {
    this.sys('close', sys_close(this.kernel.k, this.proc, fd));
  }
  dup(fd: number): number {
    return this.sys('dup', sys_dup(this.kernel.k, this.proc, fd));
  }
  /** eventfd2(initval, flags): the fd (for VFIO_DEVICE_SET_IRQS) */
  eventfd(initval = 0, flags = 0): number {
    return this.sys('eventfd', sys_eventfd2(this.kernel.k, this.proc, initval, flags));
  }
  /**
   * ioctl with the struct as bytes; the kernel writes results back into `arg`. A number is the
   * argument itself, for the ioctls that take one (VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU); a string
   * is a NUL-terminated name (VFIO_GROUP_GET_DEVICE_FD).
   */
  ioctl(fd: number, request: number, arg: Uint8Array | number | bigint | string = new Uint8Array(0)): number {
    const bytes = typeof arg === 'string' ? new TextEncoder().encode(`${arg}\0`) : typeof arg === 'object' ? arg : valueArg(arg);
    return this.sys('ioctl', sys_ioctl(this.kernel.k, this.proc, fd, request, bytes));
  }
  mmap(addr: number, length: number, prot: number, flags: number, fd: number, offset: number): number {
    return this.sys('mmap', sys_mmap2(this.kernel.k, this.proc, addr, length, prot, flags, fd, offset));
  }
  munmap(addr: number, length: number): void {
    this.sys('munmap', sys_munmap2(this.kernel.k, this.proc, addr, length));
  }
  pread(fd: number, buf: Uint8Array, offset: number): number {
    return this.sys('pread', sys_pread(this.kernel.k, this.proc, fd, buf, offset, false));
  }
  pwrite(fd: number, buf: Uint8Array, offset: number): number {
    return this.sys('pwrite', sys_pread(this.kernel.k, this.proc, fd, buf, offset, true));
  }
  private access(va: number, width: number, write: boolean, value: bigint): bigint {
    const r = this.kernel.run(this.proc, write ? 'store' : 'load', user_access(this.kernel.k, this.proc, va, width, write, value));
    if ('signal' in r) throw new SignalError(r.signal, r.code, r.addr);
    return r.value;
  }
  load(va: number, width: 1 | 2 | 4 | 8 = 4): bigint {
    return this.access(va, width, false, 0n);
  }
  store(va: number, width: 1 | 2 | 4 | 8, value: bigint | number): void {
    this.access(va, width, true, BigInt(value));
  }
  fork(name?: string): SimProcess {
    const child = this.kernel.k.newProcess(name ?? `p${this.kernel.k.procs.length + 1}`);
    this.sys('fork', sys_fork(this.kernel.k, this.proc, child));
    return new SimProcess(this.kernel, child);
  }
  exit(): void {
    this.sys('exit', sys_exit(this.kernel.k, this.proc));
  }
}

export function createKernel(opts: CreateKernelOptions): SimKernel {
  return new SimKernel(opts);
}
