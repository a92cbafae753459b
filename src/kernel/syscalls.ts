// The system calls a scenario makes. Each runs in the calling task and ends with the return to
// user space, where deferred work (the last fput's ->release) runs, outside every lock.
import type { Kernel } from './kernel.ts';
import type { Process } from './process.ts';
import { ev, type KGen } from './sched/sched.ts';
import { fput, get_file } from './fs/file.ts';
import { dup_mmap, exit_mmap, sys_mmap, sys_munmap } from './mm/mmap.ts';
import { userAccess, type AccessResult } from './mm/memory.ts';
import { sys_mprotect } from './mm/mprotect.ts';
import { sys_madvise } from './mm/madvise.ts';
import { sys_mremap } from './mm/mremap.ts';
import { vfio_device_cdev_open, vfio_device_fops_cdev_open } from './vfio/vfio_main.ts';
import { iommufd_fops_open } from './iommufd/iommufd.ts';
import { kvm_dev_open, kvm_get_vm } from './kvm/kvm_main.ts';
import { kvm_guest_access, type GuestAccessResult } from './kvm/mmu/mmu.ts';
import { vfio_fops_open } from './vfio/container.ts';
import { vfio_group_fops_open } from './vfio/group.ts';
import { E } from '../uapi/errno.ts';
import { O_CLOEXEC, O_PATH, O_RDWR } from '../uapi/mman.ts';
import { do_eventfd } from './fs/eventfd.ts';
import { o_path_file, proc_fd_open, proc_map_files_open, PROC_SELF_FD, PROC_SELF_MAP_FILES } from './fs/proc.ts';

/** Run deferred task_work (fput's release) on the way back to user space. */
export function* returnToUser(k: Kernel): KGen {
  const t = k.sched.cur();
  while (t.taskWork.length) yield* t.taskWork.shift()!();
}

function* syscall<T>(k: Kernel, body: KGen<T>): KGen<T> {
  const r = yield* body;
  yield* returnToUser(k);
  return r;
}

const DEV_PREFIX = '/dev/vfio/devices/';
const GROUP_NODE = /^\/dev\/vfio\/(0|[1-9]\d*)$/;

export function* sys_open(k: Kernel, p: Process, path: string, flags = O_RDWR): KGen<number> {
  return yield* syscall(k, do_open(k, p, path, flags));
}

function* do_open(k: Kernel, p: Process, path: string, flags: number): KGen<number> {
  return yield* (function* () {
    const fd = PROC_SELF_FD.exec(path);
    if (fd) return yield* proc_fd_open(k, p, Number(fd[1]), flags, (target) => do_open(k, p, target, flags & ~O_PATH));
    const mf = PROC_SELF_MAP_FILES.exec(path);
    if (mf) return yield* proc_map_files_open(k, p, parseInt(mf[1], 16), parseInt(mf[2], 16), flags, (target) => do_open(k, p, target, flags & ~O_PATH));
    if (path === '/dev/iommu' && !(flags & O_PATH)) return yield* p.files.alloc(iommufd_fops_open(k, flags), !!(flags & O_CLOEXEC));
    if (path === '/dev/kvm' && !(flags & O_PATH)) return yield* p.files.alloc(kvm_dev_open(k, flags), !!(flags & O_CLOEXEC));
    // the legacy container (/dev/vfio/vfio, vfio/container.ts) and the groups (/dev/vfio/N, vfio/group.ts)
    if (path === '/dev/vfio/vfio' && !(flags & O_PATH)) return yield* vfio_fops_open(k, p, flags);
    const grp = GROUP_NODE.exec(path);
    if (grp) {
      const g = k.vfioGroups[Number(grp[1])];
      if (!g || g.removed) return -E.ENOENT; // the group's node goes with its last device
      if (flags & O_PATH) return yield* p.files.alloc(yield* o_path_file(k, g.inode, path, null), !!(flags & O_CLOEXEC));
      return yield* vfio_group_fops_open(k, p, g, flags);
    }
    if (!path.startsWith(DEV_PREFIX)) return -E.ENOENT;
    // the node Linux makes (vfio/devices/vfioN: vfio_device_devnode) is the cdev; the scenario's
    // name for the device opens it as the group path does (vfio_main.ts, vfio_device_cdev_open)
    const name = path.slice(DEV_PREFIX.length);
    const byName = k.vfio.get(name);
    const vdev = byName ?? [...k.vfio.values()].find((v) => v.vfio.devName === name);
    if (!vdev) return -E.ENOENT;
    // an unregistered device has no node; other opens look it up with its registration (vfio_main.ts)
    if (flags & O_PATH) return vdev.vfio.registered ? yield* p.files.alloc(yield* o_path_file(k, vdev.vfio.inode, path, null), !!(flags & O_CLOEXEC)) : -E.ENOENT;
    const f = byName ? yield* vfio_device_cdev_open(k, vdev.vfio, flags & ~O_CLOEXEC) : yield* vfio_device_fops_cdev_open(k, vdev.vfio, flags & ~O_CLOEXEC);
    if (typeof f === 'number') return f;
    return yield* p.files.alloc(f, !!(flags & O_CLOEXEC));
  })();
}

export function* sys_eventfd2(k: Kernel, p: Process, initval: number, flags: number): KGen<number> {
  return yield* syscall(k, do_eventfd(k, p, initval, flags));
}

export function* sys_close(k: Kernel, p: Process, fd: number): KGen<number> {
  return yield* syscall(k, p.files.close(k, fd));
}

export function* sys_dup(k: Kernel, p: Process, fd: number): KGen<number> {
  return yield* syscall(k, (function* () {
    const f = yield* p.files.fget(k, fd, true);
    if (typeof f === 'number') return f;
    return yield* p.files.alloc(f, false); // the fget reference becomes the new fd's
  })());
}

export function* sys_ioctl(k: Kernel, p: Process, fd: number, cmd: number, arg: Uint8Array): KGen<number> {
  return yield* syscall(k, (function* () {
    const f = yield* p.files.fget(k, fd);
    if (typeof f === 'number') return f;
    const r = f.ops.ioctl ? yield* f.ops.ioctl(k, f, cmd, arg) : -E.ENOTTY;
    yield* fput(k, f);
    return r;
  })());
}

/**
 * pread/pwrite. With `userBuf` (pread only) the driver copies the data to that user address with
 * copy_to_user, which may fault; the model's `buf` then only carries the bytes to the caller.
 */
export function* sys_pread(k: Kernel, p: Process, fd: number, buf: Uint8Array, off: number, write: boolean, userBuf?: number): KGen<number> {
  return yield* syscall(k, (function* () {
    const f = yield* p.files.fget(k, fd);
    if (typeof f === 'number') return f;
    let r: number;
    if (write ? !f.writable : !f.readable) r = -E.EBADF;
    else {
      if (write) r = f.ops.pwrite ? yield* f.ops.pwrite(k, f, buf, off) : -E.EINVAL;
      else r = f.ops.pread ? yield* f.ops.pread(k, f, buf, off, userBuf === undefined ? undefined : { mm: p.mm, va: userBuf }) : -E.EINVAL;
    }
    yield* fput(k, f);
    return r;
  })());
}

export function* sys_mmap2(k: Kernel, p: Process, addr: number, len: number, prot: number, flags: number, fd: number, off: number): KGen<number> {
  return yield* syscall(k, sys_mmap(k, p, addr, len, prot, flags, fd, off));
}

export function* sys_munmap2(k: Kernel, p: Process, addr: number, len: number): KGen<number> {
  return yield* syscall(k, sys_munmap(k, p, addr, len));
}

export function* sys_mprotect2(k: Kernel, p: Process, addr: number, len: number, prot: number): KGen<number> {
  return yield* syscall(k, sys_mprotect(k, p, addr, len, prot));
}

export function* sys_madvise2(k: Kernel, p: Process, addr: number, len: number, advice: number): KGen<number> {
  return yield* syscall(k, sys_madvise(k, p, addr, len, advice));
}

export function* sys_mremap2(k: Kernel, p: Process, addr: number, oldLen: number, newLen: number, flags: number): KGen<number> {
  return yield* syscall(k, sys_mremap(k, p, addr, oldLen, newLen, flags));
}

/** A user load or store; the deferred work runs if a fault path dropped the last file reference. */
export function* user_access(k: Kernel, p: Process, va: number, width: number, write: boolean, value: bigint): KGen<AccessResult> {
  return yield* syscall(k, userAccess(k, p.mm, va, width, write, value));
}

/**
 * A guest access by a vCPU of the VM behind `vmfd` (one KVM_RUN that makes it, kvm/mmu/mmu.ts);
 * a negative number is the errno of reaching the VM (EBADF, ENOTTY not a VM, EIO another mm's VM).
 */
export function* sys_kvm_guest_access(k: Kernel, p: Process, vmfd: number, gpa: number, width: number, write: boolean, value: bigint): KGen<GuestAccessResult | number> {
  return yield* syscall(k, (function* () {
    const vm = yield* kvm_get_vm(k, p, vmfd);
    if (typeof vm === 'number') return vm;
    const r = yield* kvm_guest_access(k, vm.kvm, gpa, width, write, value);
    yield* fput(k, vm.file);
    return r;
  })());
}

/** fork: the child gets copies of the VMAs (with their PFN-map entries) and of the fd table. */
export function* sys_fork(k: Kernel, p: Process, child: Process): KGen<number> {
  return yield* syscall(k, (function* () {
    yield* dup_mmap(k, p.mm, child.mm);
    yield ev('dup_fd', p.files.key, 'r', [{ obj: child.files.key, acc: 'w' }]);
    for (const [fd, e] of p.files.fds) {
      yield* get_file(k, e.file);
      child.files.fds.set(fd, { ...e });
    }
    return child.pid;
  })());
}

/** exit: drop the address space, then close every fd (do_exit: exit_mm before exit_files). */
export function* sys_exit(k: Kernel, p: Process): KGen<number> {
  return yield* syscall(k, (function* () {
    yield* exit_mmap(k, p.mm);
    for (const fd of [...p.files.fds.keys()]) yield* p.files.close(k, fd);
    p.exited = true;
    return 0;
  })());
}


