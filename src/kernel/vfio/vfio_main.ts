// drivers/vfio/vfio_main.c: the vfio_device, its registration count, device files (struct
// vfio_device_file), first open / last close of the device (vfio_df_open, vfio_df_close), the file
// operations with their access_granted gate, and the VFIO_DEVICE_FEATURE wrapper. The device cdev's
// bind/attach ioctls are in device_cdev.ts, the iommufd glue in iommufd.ts.
import type { Kernel } from '../kernel.ts';
import type { Process } from '../process.ts';
import { Completion, ev, Mutex, type Ev, type KGen } from '../sched/sched.ts';
import { AddressSpace, File, type FileOps, type UserBuf } from '../fs/file.ts';
import type { Vma } from '../mm/vma.ts';
import type { IommufdCtx } from '../iommufd/iommufd.ts';
import type { IommufdDevice } from '../iommufd/device.ts';
import { vfio_df_ioctl_attach_pt, vfio_df_ioctl_bind_iommufd, vfio_df_ioctl_detach_pt, vfio_df_unbind_iommufd } from './device_cdev.ts';
import { vfio_df_iommufd_bind, vfio_df_iommufd_unbind } from './iommufd.ts';
import { vfio_device_group_unuse_iommu, vfio_device_group_use_iommu, vfio_device_remove_group, vfio_df_group_close, type VfioGroup } from './group.ts';
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
  /** the iommufd hooks (vfio_iommufd_physical_* for a physical device): the value is the device id */
  bind_iommufd(k: Kernel, ctx: IommufdCtx): KGen<number>;
  unbind_iommufd(k: Kernel): KGen;
  /** the value is the id attached */
  attach_ioas(k: Kernel, ptId: number): KGen<number>;
  detach_ioas(k: Kernel): KGen;
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
  /** on the group's device list and behind its cdev node: findable by an open (vfio_device_add) */
  registered = true;
  freed = false;
  /** unregistration has dropped the device's own reference */
  unregistering = false;
  /** the per-device inode every device file shares (vfio_fs_type: one inode per device) */
  readonly inode: AddressSpace;
  devSet!: VfioDeviceSet;
  ops!: VfioDeviceOps;
  /** vdev->iommufd_device: the iommufd object while a cdev file has the device bound */
  iommufd_device: IommufdDevice | null = null;
  /** group->cdev_device_open_cnt: cdev binds in progress or done, which keep the group closed */
  cdev_device_open_cnt = 0;
  /** device files opened by name (the model's stand-in for the group path: vfio_df_group_open) */
  group_open_cnt = 0;
  /** device->group: the device's IOMMU group (group.ts), one per device */
  group!: VfioGroup;
  /** dev_name of the PCI device (its address, 0000:3b:00.0): what VFIO_GROUP_GET_DEVICE_FD matches */
  pciName = '';
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
  /** the scheduling object of the lookups that find the device (group->device_list, the cdev node) */
  get listKey(): string {
    return `${this.name}.device_list`;
  }
  /** the scheduling object of the group's open state (group->group_lock) */
  get groupKey(): string {
    return `${this.name}.group`;
  }
}

/**
 * Registration references are counter operations: while the device is registered (its own initial
 * reference is held) every try_get succeeds and no put is the last, so they commute and are 'r'
 * events. Once unregistration has dropped the initial reference the order matters ('w'); an
 * operation announced as 'r' that finds unregistration begun announces itself again as 'w'.
 */
function* registrationEvent(op: string, d: VfioDevice, also?: Ev['also'], reads: NonNullable<Ev['also']> = []): KGen {
  // `also` (the completion a last put fires) only once a put can be the last; `reads`, always
  const acc = d.unregistering ? 'w' : 'r';
  const first = [...reads, ...(acc === 'w' && also ? also : [])];
  yield ev(op, d.regKey, acc, first.length ? first : undefined);
  if (acc === 'r' && d.unregistering) yield ev(op, d.regKey, 'w', also);
}

/** vfio_device_try_get_registration: refcount_inc_not_zero. */
export function* vfio_device_try_get_registration(k: Kernel, d: VfioDevice): KGen<boolean> {
  yield* registrationEvent('try_get_registration', d);
  return tryGetRegistration(k, d);
}
function tryGetRegistration(k: Kernel, d: VfioDevice): boolean {
  k.checkAlive(d, `registration of ${d.name}`);
  if (d.refcount === 0) return false;
  d.refcount++;
  return true;
}

/**
 * An open's lookup of the device and its registration in one step, as vfio_device_get_from_name
 * does under group->device_lock: a device that unregistration has taken off the list (and the
 * cdev node) is not found, so an open never reaches a device being freed. The cdev path
 * (chrdev_open, then vfio_device_fops_cdev_open) can find the node just before vfio_device_del
 * and then fail its try_get; the model folds that window into the lookup.
 */
function* vfio_device_get_registration_by_lookup(k: Kernel, d: VfioDevice): KGen<boolean> {
  yield* registrationEvent('try_get_registration', d, undefined, [{ obj: d.listKey, acc: 'r' }]);
  return d.registered && tryGetRegistration(k, d);
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

/**
 * vfio_unregister_group_dev: first take the device off the group's list and remove its cdev node
 * (vfio_device_group_unregister, vfio_device_del), so no new open finds it; then drop the
 * registration and wait until every user has let go, and leave the group (vfio_device_remove_group).
 * The memory stays until vfio_put_device.
 */
export function* vfio_unregister_device(k: Kernel, d: VfioDevice): KGen {
  yield ev('vfio_device_del', d.listKey, 'w');
  d.registered = false;
  yield* vfio_device_put_registration(k, d, true);
  yield* d.comp.wait_for_completion();
  k.note(`${d.name} unregistered`);
  // balances vfio_device_set_group at registration: the group goes with its last device
  yield* vfio_device_remove_group(k, d);
}

/**
 * vfio_put_device: the driver's reference to the vfio_device, dropped after unregistration
 * (vfio_pci_remove); no open holds one in the model (the lookup and the registration are one
 * step), so this is the last and frees the device.
 */
export function* vfio_put_device(k: Kernel, d: VfioDevice): KGen {
  yield ev('vfio_device_free', d.regKey);
  d.freed = true;
  k.note(`${d.name} freed`);
}

/**
 * struct vfio_device_file: one open file of a device. `group` is true for a file opened by the
 * device's name (/dev/vfio/devices/<scenario name>), which the model opens as the group path does
 * (vfio_df_group_open: open and usable at once, several at a time); a file of the cdev
 * (/dev/vfio/devices/vfioN) is usable only once VFIO_DEVICE_BIND_IOMMUFD has bound it.
 */
export class VfioDeviceFile {
  /** df->access_granted: set once the device is open for this file */
  access_granted = false;
  /** df->iommufd: the context the cdev file is bound to (a reference held) */
  iommufd: IommufdCtx | null = null;
  /** df->devid: the device's object id in that context */
  devid = 0;
  /** the scheduling object of access_granted (read without a lock, smp_load_acquire) */
  readonly key: string;
  constructor(
    k: Kernel,
    readonly device: VfioDevice,
    readonly group: boolean,
    /** the group file's group, for a file from VFIO_GROUP_GET_DEVICE_FD (group.ts); null for a named open */
    readonly viaGroup: VfioGroup | null = null,
  ) {
    this.key = `${device.name}.df${k.nextId('vfio-df')}`;
  }
}

/** smp_load_acquire(&df->access_granted), which every file operation but BIND_IOMMUFD checks. */
export function* vfio_df_access_granted(df: VfioDeviceFile): KGen<boolean> {
  yield ev('READ(access_granted)', df.key, 'r');
  return df.access_granted;
}

/** The device behind a device file, or null for any other file. */
export function vfioDeviceOfFile(f: File): VfioDevice | null {
  return f.ops === vfio_device_fops ? (f.private_data as VfioDeviceFile).device : null;
}

/**
 * vfio_df_open, under dev_set->lock: only the group path opens a device more than once
 * (-EINVAL for a cdev file when it is open already); the first open binds the iommufd (cdev) and
 * runs the driver's open_device.
 */
export function* vfio_df_open(k: Kernel, df: VfioDeviceFile): KGen<number> {
  const d = df.device;
  if (d.open_count !== 0 && !df.group) return -E.EINVAL;
  d.open_count++;
  if (d.open_count === 1) {
    // vfio_df_device_first_open
    let r = df.iommufd ? yield* vfio_df_iommufd_bind(k, df) : df.viaGroup ? yield* vfio_device_group_use_iommu(k, d) : 0;
    if (r >= 0) {
      r = yield* d.ops.open_device(k);
      if (r < 0 && df.iommufd) yield* vfio_df_iommufd_unbind(k, df);
      else if (r < 0 && df.viaGroup) yield* vfio_device_group_unuse_iommu(k, d);
    }
    if (r < 0) {
      d.open_count--;
      return r;
    }
  }
  return 0;
}

/** vfio_df_close, under dev_set->lock: the last close runs close_device, then unbinds the iommufd. */
export function* vfio_df_close(k: Kernel, df: VfioDeviceFile): KGen {
  const d = df.device;
  if (d.open_count === 1) {
    yield* d.ops.close_device(k);
    if (df.iommufd) yield* vfio_df_iommufd_unbind(k, df);
    else if (df.viaGroup) yield* vfio_device_group_unuse_iommu(k, d);
  }
  d.open_count--;
}

const deviceOf = (file: File) => (file.private_data as VfioDeviceFile).device;

const vfio_device_fops: FileOps = {
  kind: 'vfio-device',
  /**
   * vfio_device_fops_unl_ioctl: BIND_IOMMUFD first; anything else needs access granted (-EINVAL
   * before the bind); ATTACH/DETACH_IOMMUFD_PT only on a cdev file (a group file passes them to the
   * driver, which does not know them: -ENOTTY); then FEATURE or the driver's ioctl.
   */
  *ioctl(k, file, cmd, arg) {
    const df = file.private_data as VfioDeviceFile;
    const p = k.currentProcess();
    if (cmd === IOCTLS.VFIO_DEVICE_BIND_IOMMUFD) return yield* vfio_df_ioctl_bind_iommufd(k, df, arg);
    if (!(yield* vfio_df_access_granted(df))) return -E.EINVAL;
    if (!df.group && cmd === IOCTLS.VFIO_DEVICE_ATTACH_IOMMUFD_PT) return yield* vfio_df_ioctl_attach_pt(k, df, arg);
    if (!df.group && cmd === IOCTLS.VFIO_DEVICE_DETACH_IOMMUFD_PT) return yield* vfio_df_ioctl_detach_pt(k, df, arg);
    if (cmd === IOCTLS.VFIO_DEVICE_FEATURE) return yield* vfio_ioctl_device_feature(k, p, df.device, arg);
    return yield* df.device.ops.ioctl(k, p, cmd, arg);
  },
  /** vfio_device_fops_mmap / _read / _write: -EINVAL before access is granted */
  *mmap(k, file, vma) {
    if (!(yield* vfio_df_access_granted(file.private_data as VfioDeviceFile))) return -E.EINVAL;
    return yield* deviceOf(file).ops.mmap(k, file, vma);
  },
  *pread(k, file, buf, off, user) {
    if (!(yield* vfio_df_access_granted(file.private_data as VfioDeviceFile))) return -E.EINVAL;
    return yield* deviceOf(file).ops.read(k, buf, off, user);
  },
  *pwrite(k, file, buf, off) {
    if (!(yield* vfio_df_access_granted(file.private_data as VfioDeviceFile))) return -E.EINVAL;
    return yield* deviceOf(file).ops.write(k, buf, off);
  },
  /**
   * vfio_device_fops_release: a group file closes the device (vfio_df_group_close), a cdev file
   * unbinds (vfio_df_unbind_iommufd: detach, close_device on the last close, unbind, put the
   * iommufd); then the registration is dropped.
   */
  *release(k, file) {
    const df = file.private_data as VfioDeviceFile;
    const d = df.device;
    if (df.viaGroup) yield* vfio_df_group_close(k, df);
    else if (df.group) {
      yield* d.devSet.lock.lock();
      yield* vfio_df_close(k, df);
      yield* d.devSet.lock.unlock();
      yield ev('group_lock', d.groupKey, 'w');
      d.group_open_cnt--;
    } else yield* vfio_df_unbind_iommufd(k, df);
    yield* vfio_device_put_registration(k, d);
  },
};

/** The device files' ops, for the group's GET_DEVICE_FD (group.ts). */
export const vfioDeviceFileOps = (): FileOps => vfio_device_fops;

export function isVfioDeviceFile(f: File): boolean {
  return f.ops === vfio_device_fops;
}

/**
 * Open of /dev/vfio/devices/NAME by the scenario's device name: open and bind in one, as the group
 * path opens a device (vfio_df_group_open): the new file holds a registration, the device is opened
 * (open_device on the first open) and access is granted at once. -EBUSY while a cdev file has the
 * device bound (vfio_group_fops_open refuses a group whose device the cdev holds).
 */
export function* vfio_device_cdev_open(k: Kernel, d: VfioDevice, flags: number): KGen<File | number> {
  // vfio_group_get_device_fd: -ENODEV once unregistration has taken the device off the list
  if (!(yield* vfio_device_get_registration_by_lookup(k, d))) return -E.ENODEV;
  // under group->group_lock: the cdev holds the device, or this open counts as the group's
  yield ev('group_lock', d.groupKey, 'w');
  if (d.cdev_device_open_cnt || d.group.opened_file) {
    yield* vfio_device_put_registration(k, d);
    return -E.EBUSY;
  }
  d.group_open_cnt++;
  const df = new VfioDeviceFile(k, d, true);
  yield* d.devSet.lock.lock();
  const r = yield* vfio_df_open(k, df);
  yield* d.devSet.lock.unlock();
  if (r < 0) {
    yield ev('group_lock', d.groupKey, 'w');
    d.group_open_cnt--;
    yield* vfio_device_put_registration(k, d);
    return r;
  }
  df.access_granted = true;
  return new File(k.nextId('file'), vfio_device_fops, d.inode, flags, df, `/dev/vfio/devices/${d.name}`);
}

/**
 * vfio_device_fops_cdev_open: open of /dev/vfio/devices/vfioN. The file holds a registration and
 * shares the device inode, but nothing is opened: every access but VFIO_DEVICE_BIND_IOMMUFD is
 * -EINVAL until the bind.
 */
export function* vfio_device_fops_cdev_open(k: Kernel, d: VfioDevice, flags: number): KGen<File | number> {
  // the node is gone once vfio_device_del has run: the path lookup fails
  if (!(yield* vfio_device_get_registration_by_lookup(k, d))) return -E.ENOENT;
  return new File(k.nextId('file'), vfio_device_fops, d.inode, flags, new VfioDeviceFile(k, d, false), `/dev/vfio/devices/${d.devName}`);
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
