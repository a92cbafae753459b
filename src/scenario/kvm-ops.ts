// The KVM operations of a scenario (src/kernel/kvm/): KVM_CREATE_VM, KVM_SET_USER_MEMORY_REGION as
// high-level steps (the raw ioctls go through ops.ts's `ioctl`), and guest accesses by gpa.
import { sys_close, sys_ioctl, sys_kvm_guest_access, sys_open } from '../kernel/syscalls.ts';
import type { KGen } from '../kernel/sched/sched.ts';
import type { Step } from './loader.ts';
import { asJson, errOr, okValue, type OpEnv, type OpOutcome } from './ops.ts';
import { hex } from './values.ts';
import { errnoName } from '../uapi/errno.ts';
import { O_RDWR } from '../uapi/mman.ts';
import { encode } from '../uapi/struct.ts';
import { KVM_CREATE_VM, KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY, KVM_SET_USER_MEMORY_REGION, kvm_userspace_memory_region } from '../uapi/kvm.ts';

const MEM_FLAGS: Record<string, number> = { log_dirty_pages: KVM_MEM_LOG_DIRTY_PAGES, readonly: KVM_MEM_READONLY };

export function* execKvmOp(env: OpEnv, s: Step): KGen<OpOutcome> {
  const { k, proc: p, res } = env;
  const a = s.args;
  const u64 = (v: bigint) => BigInt.asUintN(64, v);
  switch (s.op) {
    case 'kvm_create_vm': {
      const own = a.kvm === undefined;
      const kfd = own ? yield* sys_open(k, p, '/dev/kvm', O_RDWR) : Number(res(a.kvm));
      if (kfd < 0) return errOr(kfd, () => okValue(kfd));
      const r = yield* sys_ioctl(k, p, kfd, KVM_CREATE_VM, new Uint8Array(0));
      if (own) yield* sys_close(k, p, kfd);
      return errOr(r, () => ({ ...okValue(r), detail: 'KVM_CREATE_VM' }));
    }
    case 'kvm_set_memory_region': {
      const flags = ((a.flags as string[] | undefined) ?? []).reduce((x, f) => x | MEM_FLAGS[f], 0);
      const uaddr = u64(res(a.addr) + (a.offset !== undefined ? res(a.offset) : 0n));
      const arg = encode(kvm_userspace_memory_region, {
        slot: u64(res(a.slot ?? 0)) & 0xffffffffn, flags, guest_phys_addr: u64(res(a.gpa)), memory_size: u64(res(a.length)), userspace_addr: uaddr,
      });
      const r = yield* sys_ioctl(k, p, Number(res(a.vm)), KVM_SET_USER_MEMORY_REGION, arg);
      return errOr(r, () => ({ ...okValue(r), detail: 'KVM_SET_USER_MEMORY_REGION' }));
    }
    case 'guest_load':
    case 'guest_store': {
      const width = Number(a.width ?? 4), write = s.op === 'guest_store';
      const value = write ? BigInt.asUintN(8 * width, res(a.value)) : 0n;
      const gpa = Number(u64(res(a.gpa) + (a.offset !== undefined ? res(a.offset) : 0n)));
      const r = yield* sys_kvm_guest_access(k, p, Number(res(a.vm)), gpa, width, write, value);
      if (typeof r === 'number') return { result: { errno: errnoName(r) }, detail: 'KVM_RUN: no such VM of this process' };
      if ('exit' in r && r.exit === 'KVM_EXIT_MMIO')
        return { result: { ok: true, out: { exit_reason: r.exit, gpa: hex(r.gpa) } }, detail: `KVM_RUN exits to the VMM: KVM_EXIT_MMIO at gpa ${hex(r.gpa)}: ${r.why}` };
      if ('errno' in r) return { result: { errno: errnoName(r.errno) }, detail: `KVM_RUN returned ${errnoName(r.errno)}, exit_reason ${r.exit} at gpa ${hex(r.gpa)}: ${r.why}` };
      return write ? { result: { ok: true } } : { result: { ok: true, value: asJson(r.value, width) }, bind: { value: r.value } };
    }
  }
  throw new Error(`not a KVM operation: ${s.op}`);
}
