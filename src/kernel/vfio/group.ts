// drivers/vfio/group.c: the VFIO group, /dev/vfio/N, N the IOMMU group's number. A group file is
// exclusive (one open at a time, -EBUSY), and so is it against the device cdev: a group cannot be
// opened while a cdev file has one of its devices bound, nor a device bound while its group is open
// (vfio_device_block_group, device_cdev.ts). VFIO_GROUP_GET_STATUS, VFIO_GROUP_SET_CONTAINER /
// UNSET_CONTAINER (container.ts) and VFIO_GROUP_GET_DEVICE_FD, which opens a device by its name
// (dev_name: the PCI address, 0000:01:00.0) once the container has an IOMMU: the first open of the
// device takes a container user and a reference on the group file (vfio_device_group_use_iommu), so
// the group and its container outlive the group fd while a device file is open.
//
// Each modelled function is its own IOMMU group (as behind an ACS-capable port), numbered in the
// order the scenario lists its devices, from 0: the first device's group is /dev/vfio/0.
import type { Kernel } from '../kernel.ts';
import type { Process } from '../process.ts';
import { ev, Mutex, type KGen } from '../sched/sched.ts';
import { AddressSpace, File, fput, get_file, type FileOps } from '../fs/file.ts';
import type { IommuDomain } from '../iommufd/io_pagetable.ts';
import { isIommufdFile } from '../iommufd/iommufd.ts';
import { E } from '../../uapi/errno.ts';
import { O_CLOEXEC, PAGE_SIZE } from '../../uapi/mman.ts';
import { decode, encodeInto, offsetofend } from '../../uapi/struct.ts';
import { IOCTLS, VFIO_GROUP_FLAGS_CONTAINER_SET, VFIO_GROUP_FLAGS_VIABLE, vfio_group_status } from '../../uapi/vfio.ts';
import {
  vfio_container_attach_group, vfio_container_from_file, vfio_group_detach_container, vfio_group_unuse_container, vfio_group_use_container,
  type VfioContainer,
} from './container.ts';
import {
  vfio_device_put_registration, vfio_device_try_get_registration, vfio_df_close, vfio_df_open, VfioDeviceFile, vfioDeviceFileOps,
  type VfioDevice,
} from './vfio_main.ts';

/** struct vfio_group */
export class VfioGroup {
  readonly devices: VfioDevice[] = [];
  readonly group_lock: Mutex;
  /** group->opened_file: the one open group file */
  opened_file: File | null = null;
  container: VfioContainer | null = null;
  /** 1 for the attached container, +1 while a device of the group is open */
  container_users = 0;
  /** the type1 IOMMU domain the group is attached to (the container's), or null: blocking */
  domain: IommuDomain | null = null;
  readonly inode: AddressSpace;
  constructor(k: Kernel, readonly id: number) {
    this.group_lock = new Mutex(k.sched, `group${id}.group_lock`, 'vfio_group.group_lock');
    this.inode = new AddressSpace(`vfio-group${id}`);
  }
  get key(): string {
    return `group${this.id}`;
  }
  /** the scheduling object of which domain translates the group's DMA */
  get iommuKey(): string {
    return `group${this.id}.iommu`;
  }
  /** vfio_group_has_iommu (only the container path: iommufd's VFIO compat is not modelled) */
  get has_iommu(): boolean {
    return this.container !== null;
  }
  /** every device of the group has left vfio (group->iommu_group is NULL) */
  get removed(): boolean {
    return this.devices.every((d) => d.freed);
  }
}

/** vfio_device_set_group: each device is its own group, numbered as the scenario lists them. */
export function vfio_device_set_group(k: Kernel, d: VfioDevice): VfioGroup {
  const g = new VfioGroup(k, k.vfioGroups.length);
  g.devices.push(d);
  k.vfioGroups.push(g);
  return g;
}

/**
 * vfio_device_remove_group, when the last device of a group is unregistered: a container still set
 * is detached (its IOMMU mappings go when it was the last group) and new users get -ENODEV.
 */
export function* vfio_device_remove_group(k: Kernel, d: VfioDevice): KGen {
  const g = d.group;
  if (!g.removed) return;
  yield* g.group_lock.lock();
  if (g.container) yield* vfio_group_detach_container(k, g);
  yield* g.group_lock.unlock();
}

/** vfio_device_group_use_iommu, under group_lock at a device's first open: a container user and a group file reference. */
export function* vfio_device_group_use_iommu(k: Kernel, d: VfioDevice): KGen<number> {
  const g = d.group;
  const r = vfio_group_use_container(g);
  if (r) return r;
  yield* get_file(k, g.opened_file!);
  return 0;
}
/** vfio_device_group_unuse_iommu, at its last close. */
export function* vfio_device_group_unuse_iommu(k: Kernel, d: VfioDevice): KGen {
  vfio_group_unuse_container(d.group);
  yield* fput(k, d.group.opened_file!); // the file use_iommu took: it cannot have been released since
}

/** vfio_df_group_open: the group needs a container (-EINVAL), then vfio_df_open under dev_set->lock. */
function* vfio_df_group_open(k: Kernel, df: VfioDeviceFile): KGen<number> {
  const d = df.device, g = d.group;
  yield* g.group_lock.lock();
  let ret = -E.EINVAL;
  if (g.has_iommu) {
    yield* d.devSet.lock.lock();
    ret = yield* vfio_df_open(k, df);
    yield* d.devSet.lock.unlock();
  }
  yield* g.group_lock.unlock();
  return ret;
}

/** vfio_df_group_close, at the release of a device file opened through the group. */
export function* vfio_df_group_close(k: Kernel, df: VfioDeviceFile): KGen {
  const d = df.device;
  yield* d.group.group_lock.lock();
  yield* d.devSet.lock.lock();
  yield* vfio_df_close(k, df);
  yield* d.devSet.lock.unlock();
  yield* d.group.group_lock.unlock();
}

/**
 * vfio_group_ioctl_get_device_fd: the name is a NUL-terminated string (strndup_user: -EFAULT for
 * a string that runs past the buffer, -EINVAL for one longer than a page); no device of the group
 * by that name (or one being removed) -ENODEV; then the device file (O_RDWR, close-on-exec), opened
 * as vfio_df_group_open does. The value is the new fd.
 */
function* vfio_group_ioctl_get_device_fd(k: Kernel, p: Process, g: VfioGroup, arg: Uint8Array): KGen<number> {
  const nul = arg.indexOf(0);
  if (nul < 0) return arg.length > PAGE_SIZE ? -E.EINVAL : -E.EFAULT;
  if (nul >= PAGE_SIZE) return -E.EINVAL;
  const name = new TextDecoder().decode(arg.subarray(0, nul));
  yield ev('device_list', g.key, 'r');
  const d = g.devices.find((x) => x.pciName === name);
  if (!d || !(yield* vfio_device_try_get_registration(k, d))) return -E.ENODEV;
  const df = new VfioDeviceFile(k, d, true, g);
  const r = yield* vfio_df_group_open(k, df);
  if (r < 0) {
    yield* vfio_device_put_registration(k, d);
    return r;
  }
  yield ev('WRITE(access_granted)', df.key, 'w');
  df.access_granted = true;
  const f = new File(k.nextId('file'), vfioDeviceFileOps(), d.inode, 2 /* O_RDWR */, df, 'anon_inode:[vfio-device]');
  return yield* p.files.alloc(f, true);
}

/** vfio_group_ioctl_get_status: argsz below 8 -EINVAL; CONTAINER_SET | VIABLE with a container, else VIABLE. */
function* vfio_group_ioctl_get_status(g: VfioGroup, arg: Uint8Array): KGen<number> {
  const minsz = offsetofend(vfio_group_status, 'flags');
  if (arg.length < minsz) return -E.EFAULT;
  if (Number(decode(vfio_group_status, arg).argsz) < minsz) return -E.EINVAL;
  yield* g.group_lock.lock();
  const gone = g.removed;
  const flags = g.has_iommu ? VFIO_GROUP_FLAGS_CONTAINER_SET | VFIO_GROUP_FLAGS_VIABLE : VFIO_GROUP_FLAGS_VIABLE;
  yield* g.group_lock.unlock();
  if (gone) return -E.ENODEV;
  encodeInto(vfio_group_status, { flags }, arg, 0);
  return 0;
}

/**
 * vfio_group_ioctl_set_container: the argument is an int, the container's fd (-EFAULT if it is not
 * there, -EBADF for no such fd); a group with a container already -EINVAL; a removed group -ENODEV;
 * a container file attaches (container.ts); an iommufd would use iommufd's VFIO compatibility IOAS,
 * which the model does not have (-EOPNOTSUPP, with a note); any other file -EBADFD.
 */
function* vfio_group_ioctl_set_container(k: Kernel, p: Process, g: VfioGroup, arg: Uint8Array): KGen<number> {
  if (arg.length < 4) return -E.EFAULT;
  const fd = new DataView(arg.buffer, arg.byteOffset, 4).getInt32(0, true);
  const f = yield* p.files.fget(k, fd);
  if (typeof f === 'number') return -E.EBADF;
  yield* g.group_lock.lock();
  let ret: number;
  const c = vfio_container_from_file(f);
  if (g.has_iommu) ret = -E.EINVAL;
  else if (g.removed) ret = -E.ENODEV;
  else if (c) ret = yield* vfio_container_attach_group(k, c, g);
  else if (isIommufdFile(f)) {
    k.note("VFIO_GROUP_SET_CONTAINER with an iommufd (iommufd's VFIO compatibility) is not modelled");
    ret = -E.EOPNOTSUPP;
  } else ret = -E.EBADFD;
  yield* g.group_lock.unlock();
  yield* fput(k, f);
  return ret;
}

/** vfio_group_ioctl_unset_container: no container -EINVAL, a device open (other users) -EBUSY. */
function* vfio_group_ioctl_unset_container(k: Kernel, g: VfioGroup): KGen<number> {
  yield* g.group_lock.lock();
  let ret = 0;
  if (!g.has_iommu) ret = -E.EINVAL;
  else if (g.container_users !== 1) ret = -E.EBUSY;
  else yield* vfio_group_detach_container(k, g);
  yield* g.group_lock.unlock();
  return ret;
}

const vfio_group_fops: FileOps = {
  kind: 'vfio-group',
  *ioctl(k, file, cmd, arg) {
    const g = file.private_data as VfioGroup;
    const p = k.currentProcess();
    switch (cmd) {
      case IOCTLS.VFIO_GROUP_GET_DEVICE_FD: return yield* vfio_group_ioctl_get_device_fd(k, p, g, arg);
      case IOCTLS.VFIO_GROUP_GET_STATUS: return yield* vfio_group_ioctl_get_status(g, arg);
      case IOCTLS.VFIO_GROUP_SET_CONTAINER: return yield* vfio_group_ioctl_set_container(k, p, g, arg);
      case IOCTLS.VFIO_GROUP_UNSET_CONTAINER: return yield* vfio_group_ioctl_unset_container(k, g);
      default: return -E.ENOTTY;
    }
  },
  /**
   * vfio_group_fops_release: only once no device file holds the group file; the container is
   * detached (with the last group, the IOMMU and every mapping go).
   */
  *release(k, file) {
    const g = file.private_data as VfioGroup;
    yield* g.group_lock.lock();
    if (g.container) yield* vfio_group_detach_container(k, g);
    g.opened_file = null;
    yield* g.group_lock.unlock();
  },
};

export function isVfioGroupFile(f: File): boolean {
  return f.ops === vfio_group_fops;
}

/**
 * vfio_group_fops_open: open("/dev/vfio/N"). -ENODEV once its devices are gone; -EBUSY while the
 * group is open, while a cdev file has one of its devices bound, and (the model's stand-in for a
 * group open) while a device of it is open by its scenario name.
 */
export function* vfio_group_fops_open(k: Kernel, p: Process, g: VfioGroup, flags: number): KGen<number> {
  yield* g.group_lock.lock();
  let ret = 0;
  if (g.removed) ret = -E.ENODEV;
  else {
    for (const d of g.devices) yield ev('group_lock', d.groupKey, 'w');
    if (g.opened_file || g.devices.some((d) => d.cdev_device_open_cnt || d.group_open_cnt)) ret = -E.EBUSY;
  }
  let f: File | null = null;
  if (!ret) {
    f = new File(k.nextId('file'), vfio_group_fops, g.inode, flags & ~O_CLOEXEC, g, `/dev/vfio/${g.id}`);
    g.opened_file = f;
  }
  yield* g.group_lock.unlock();
  if (!f) return ret;
  return yield* p.files.alloc(f, !!(flags & O_CLOEXEC));
}
