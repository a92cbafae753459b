// drivers/vfio/vfio_main.c and device_cdev.c: the vfio_device, its registration count, device files
// (/dev/vfio/devices/NAME), open/close of the device, and the VFIO_DEVICE_FEATURE wrapper.
import type { Kernel } from '../kernel.ts';
import type { Process } from '../process.ts';
import { Completion, ev, Mutex, type Ev, type KGen } from '../sched/sched.ts';
import { AddressSpace, File, type FileOps, type UserBuf } from '../fs/file.ts';
import type { Vma } from '../mm/vma.ts';
import { E } from '../../uapi/errno.ts';
import { decode, offsetofend } from '../../uapi/struct.ts';
import {
  IOCTLS, VFIO_DEVICE_FEATURE_GET, VFIO_DEVICE_FEATURE_MASK, VFIO_DEVICE_FEATURE_PROBE, VFIO_DEVICE_FEATURE_SET,
  vfio_device_feature,
} from '../../uapi/vfio.ts';

/** struct vfio_device_ops: what a bus driver (vfio-pci) plugs in. */
export interface VfioDeviceOps {
  open_device(k: Kernel): KGen<number>;
  close_device(k: Kernel): KGen;
  ioctl(k: Kernel, p: Process, cmd: number, arg: Uint8Array): KGen<number>;
  device_feature(k: Kernel, p: Process, flags: number, payload: Uint8Array, argsz: number): KGen<number>;
  mmap(k: Kernel, file: File, vma: Vma): KGen<number>;
  read(k: Kernel, buf: Uint8Array, off: number, user?: UserBuf): KGen<number>;
  write(k: Kernel, buf: Uint8Array, off: number): KGen<number>;
}

/**
 * struct vfio_device_set: the devices a reset can only reach together (those behind one bridge, as
 * vfio_pci_core_register_device assigns them by slot or bus; a function on the root bus is alone).
 * Its lock serializes open, close and hot reset across them.
 */
export class VfioDeviceSet {
  readonly devices: VfioDevice[] = [];
  readonly lock: Mutex;
  constructor(k: Kernel, readonly name: string) {
    this.lock = new Mutex(k.sched, `${name}.dev_set.lock`, 'dev_set_lock');
  }
}

export class VfioDevice {
  /** registration count: 1 for being registered, +1 per device file, DMABUF and in-flight fault */
  refcount = 1;
  readonly comp: Completion;
  open_count = 0;
  freed = false;
  /** unregistration has dropped the device's own reference */
  unregistering = false;
  /** the per-device inode every device file shares (vfio_fs_type: one inode per device) */
  readonly inode: AddressSpace;
  devSet!: VfioDeviceSet;
  ops!: VfioDeviceOps;
  /** dev_name of the vfio device: "vfio<N>", N from the registration order (vfio_device_set_name's IDA) */
  readonly devName: string;
  constructor(readonly k: Kernel, readonly name: string) {
    this.devName = `vfio${k.nextId('vfio-device')}`;
    this.comp = new Completion(k.sched, `${name}.unregister`);
    this.inode = new AddressSpace(`${name}.inode`);
  }
  get regKey(): string {
    return `${this.name}.registration`;
  }
}

/**
 * Registration references are counter operations: while the device is registered (its own initial
 * reference is held) every try_get succeeds and no put is the last, so they commute and are 'r'
 * events. Once unregistration has dropped the initial reference the order matters ('w'); an
 * operation announced as 'r' that finds unregistration begun announces itself again as 'w'.
 */
function* registrationEvent(op: string, d: VfioDevice, also?: Ev['also']): KGen {
  // `also` (the completion a last put fires) only once a put can be the last
  const acc = d.unregistering ? 'w' : 'r';
  yield ev(op, d.regKey, acc, acc === 'w' ? also : undefined);
  if (acc === 'r' && d.unregistering) yield ev(op, d.regKey, 'w', also);
}

/** vfio_device_try_get_registration: refcount_inc_not_zero. */
export function* vfio_device_try_get_registration(k: Kernel, d: VfioDevice): KGen<boolean> {
  yield* registrationEvent('try_get_registration', d);
  k.checkAlive(d, `registration of ${d.name}`);
  if (d.refcount === 0) return false;
  d.refcount++;
  return true;
}
export function* vfio_device_put_registration(k: Kernel, d: VfioDevice, initial = false): KGen {
  if (initial) {
    yield ev('put_registration', d.regKey, 'w', [{ obj: d.comp.name, acc: 'w' }]);
    d.unregistering = true;
  } else yield* registrationEvent('put_registration', d, [{ obj: d.comp.name, acc: 'w' }]);
  k.checkAlive(d, `registration of ${d.name}`);
  if (--d.refcount < 0) k.violation('lifetime', `registration count of ${d.name} underflows`);
  if (d.refcount === 0) d.comp.complete();
}

/** vfio_unregister_group_dev: drop the registration and wait until every user has let go. */
export function* vfio_unregister_device(k: Kernel, d: VfioDevice): KGen {
  yield* vfio_device_put_registration(k, d, true);
  yield* d.comp.wait_for_completion();
  yield ev('vfio_device_free', d.regKey);
  d.freed = true;
  k.note(`${d.name} unregistered and freed`);
}

const vfio_device_fops: FileOps = {
  kind: 'vfio-device',
  *ioctl(k, file, cmd, arg) {
    const d = file.private_data as VfioDevice;
    const p = k.currentProcess();
    if (cmd === IOCTLS.VFIO_DEVICE_FEATURE) return yield* vfio_ioctl_device_feature(k, p, d, arg);
    return yield* d.ops.ioctl(k, p, cmd, arg);
  },
  *mmap(k, file, vma) {
    return yield* (file.private_data as VfioDevice).ops.mmap(k, file, vma);
  },
  *pread(k, file, buf, off, user) {
    return yield* (file.private_data as VfioDevice).ops.read(k, buf, off, user);
  },
  *pwrite(k, file, buf, off) {
    return yield* (file.private_data as VfioDevice).ops.write(k, buf, off);
  },
  /** vfio_device_fops_release: close the device on the last close, then drop the registration. */
  *release(k, file) {
    const d = file.private_data as VfioDevice;
    yield* d.devSet.lock.lock();
    if (--d.open_count === 0) yield* d.ops.close_device(k);
    yield* d.devSet.lock.unlock();
    yield* vfio_device_put_registration(k, d);
  },
};

export function isVfioDeviceFile(f: File): boolean {
  return f.ops === vfio_device_fops;
}

/**
 * Open of /dev/vfio/devices/NAME, modelled as open + VFIO_DEVICE_BIND_IOMMUFD in one: the new file
 * holds a registration and opens the device (open_device) when it is the first.
 */
export function* vfio_device_cdev_open(k: Kernel, d: VfioDevice, flags: number): KGen<File | number> {
  if (!(yield* vfio_device_try_get_registration(k, d))) return -E.ENODEV;
  yield* d.devSet.lock.lock();
  if (d.open_count === 0) {
    const r = yield* d.ops.open_device(k);
    if (r < 0) {
      yield* d.devSet.lock.unlock();
      yield* vfio_device_put_registration(k, d);
      return r;
    }
  }
  d.open_count++;
  yield* d.devSet.lock.unlock();
  return new File(k.nextId('file'), vfio_device_fops, d.inode, flags, d, `/dev/vfio/devices/${d.name}`);
}

/**
 * vfio_ioctl_device_feature: the generic checks before the driver sees the feature. The driver gets
 * the payload after the 8-byte header.
 */
function* vfio_ioctl_device_feature(k: Kernel, p: Process, d: VfioDevice, arg: Uint8Array): KGen<number> {
  const minsz = offsetofend(vfio_device_feature, 'flags');
  if (arg.length < minsz) return -E.EFAULT;
  const hdr = decode(vfio_device_feature, arg);
  const argsz = Number(hdr.argsz), flags = Number(hdr.flags);
  if (argsz < minsz) return -E.EINVAL;
  const known = VFIO_DEVICE_FEATURE_MASK | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE;
  if (flags & ~known) return -E.EINVAL;
  if (!(flags & VFIO_DEVICE_FEATURE_PROBE) && flags & VFIO_DEVICE_FEATURE_GET && flags & VFIO_DEVICE_FEATURE_SET) return -E.EINVAL;
  // The payload is the user memory after the header; argsz - 8 is what the driver is told it has.
  // Reading past the bytes the caller passed is a fault (copy_from_user returns -EFAULT).
  return yield* d.ops.device_feature(k, p, flags, arg.subarray(minsz), argsz - minsz);
}

/**
 * vfio_check_feature: 1 means "go on", 0 means a successful probe, <0 an error.
 */
export function vfio_check_feature(flags: number, argsz: number, supported: number, minsz: number): number {
  if ((flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET)) & ~supported) return -E.EINVAL;
  if (flags & VFIO_DEVICE_FEATURE_PROBE) return 0;
  if (!(flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET))) return -E.EINVAL;
  if (argsz < minsz) return -E.EINVAL;
  return 1;
}
