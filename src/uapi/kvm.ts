// <uapi/linux/kvm.h>: the ioctls of /dev/kvm and of a VM fd that the model implements, their
// numbers and the layout of struct kvm_userspace_memory_region (x86-64). KVMIO is 0xAE.
import { _IO, _IOC, _IOC_WRITE } from './ioctl.ts';
import { cstruct } from './struct.ts';

export const KVMIO = 0xae;
const _IOW = (type: number, nr: number, size: number) => _IOC(_IOC_WRITE, type, nr, size);

/** struct kvm_userspace_memory_region: slot u32@0, flags u32@4, guest_phys_addr u64@8, memory_size u64@16, userspace_addr u64@24 */
export const kvm_userspace_memory_region = cstruct('kvm_userspace_memory_region', [
  ['slot', 'u32'], ['flags', 'u32'], ['guest_phys_addr', 'u64'], ['memory_size', 'u64'], ['userspace_addr', 'u64'],
]);

/** ioctls of /dev/kvm */
export const KVM_GET_API_VERSION = _IO(KVMIO, 0x00);
export const KVM_CREATE_VM = _IO(KVMIO, 0x01);
export const KVM_CHECK_EXTENSION = _IO(KVMIO, 0x03);
export const KVM_GET_VCPU_MMAP_SIZE = _IO(KVMIO, 0x04);
/** ioctls of a VM fd */
export const KVM_CREATE_VCPU = _IO(KVMIO, 0x41);
export const KVM_SET_USER_MEMORY_REGION = _IOW(KVMIO, 0x46, kvm_userspace_memory_region.size);
/** ioctls of a vCPU fd */
export const KVM_RUN = _IO(KVMIO, 0x80);

/** The answer of KVM_GET_API_VERSION since Linux 2.6.22. */
export const KVM_API_VERSION = 12;

/** The ioctls above by name, for scenarios that write them as raw ioctls. */
export const KVM_IOCTLS = {
  KVM_GET_API_VERSION, KVM_CREATE_VM, KVM_CHECK_EXTENSION, KVM_GET_VCPU_MMAP_SIZE, KVM_CREATE_VCPU, KVM_SET_USER_MEMORY_REGION, KVM_RUN,
} as const;
/** Those Linux has and the model does not: a guest access step stands for a vCPU's KVM_RUN. */
export const KVM_NOT_MODELLED = new Set<string>(['KVM_CHECK_EXTENSION', 'KVM_GET_VCPU_MMAP_SIZE', 'KVM_CREATE_VCPU', 'KVM_RUN']);

/** kvm_userspace_memory_region.flags */
export const KVM_MEM_LOG_DIRTY_PAGES = 1 << 0;
export const KVM_MEM_READONLY = 1 << 1;

/** kvm_run.exit_reason values a guest access can end in */
export const KVM_EXIT_MMIO = 6;
export const KVM_EXIT_MEMORY_FAULT = 39;
