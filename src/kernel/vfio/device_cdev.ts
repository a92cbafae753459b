// drivers/vfio/device_cdev.c: the device cdev's own ioctls. VFIO_DEVICE_BIND_IOMMUFD binds an
// unbound cdev file to an iommufd context and opens the device (access is granted only then);
// VFIO_DEVICE_ATTACH_IOMMUFD_PT / DETACH_IOMMUFD_PT put the bound device behind an IOAS's domain
// or take it away; closing the file unbinds (vfio_df_unbind_iommufd). Struct layouts and field
// names are include/uapi/linux/vfio.h's.
import type { Kernel } from '../kernel.ts';
import { ev, type KGen } from '../sched/sched.ts';
import { iommufd_ctx_from_fd, iommufd_ctx_put } from '../iommufd/device.ts';
import { vfio_df_close, vfio_df_open, type VfioDevice, type VfioDeviceFile } from './vfio_main.ts';
import { E } from '../../uapi/errno.ts';
import { decode, encodeInto, offsetofend } from '../../uapi/struct.ts';
import {
  VFIO_DEVICE_ATTACH_PASID, VFIO_DEVICE_DETACH_PASID, vfio_device_attach_iommufd_pt, vfio_device_bind_iommufd, vfio_device_detach_iommufd_pt,
} from '../../uapi/vfio.ts';

/**
 * vfio_device_block_group: a cdev bind keeps the device's group from being opened; -EBUSY while
 * it is open (/dev/vfio/N, group.ts, or the model's stand-in: the device opened by name).
 */
function* vfio_device_block_group(d: VfioDevice): KGen<number> {
  yield ev('group_lock', d.groupKey, 'w');
  if (d.group_open_cnt || d.group.opened_file) return -E.EBUSY;
  d.cdev_device_open_cnt++;
  return 0;
}
function* vfio_device_unblock_group(d: VfioDevice): KGen {
  yield ev('group_lock', d.groupKey, 'w');
  d.cdev_device_open_cnt--;
}

/**
 * vfio_df_ioctl_bind_iommufd, in its order: argsz below 16, flags or a negative iommufd -EINVAL;
 * a group file -EINVAL; the group open -EBUSY; under dev_set->lock a file already bound -EINVAL
 * ("one device cannot be bound twice"), the iommufd fd -EBADF (not open) or -EBADFD (not
 * /dev/iommu), then vfio_df_open (-EINVAL when another cdev file has the device open). On success
 * out_devid is written and access granted.
 */
export function* vfio_df_ioctl_bind_iommufd(k: Kernel, df: VfioDeviceFile, arg: Uint8Array): KGen<number> {
  const d = df.device;
  const minsz = offsetofend(vfio_device_bind_iommufd, 'out_devid');
  if (arg.length < minsz) return -E.EFAULT;
  const bind = decode(vfio_device_bind_iommufd, arg);
  if (Number(bind.argsz) < minsz || Number(bind.flags) || Number(bind.iommufd) < 0) return -E.EINVAL;
  if (df.group) return -E.EINVAL; // BIND_IOMMUFD only allowed for cdev fds
  const blocked = yield* vfio_device_block_group(d);
  if (blocked) return blocked;
  yield* d.devSet.lock.lock();
  let ret: number;
  if (df.access_granted) ret = -E.EINVAL;
  else {
    const ctx = yield* iommufd_ctx_from_fd(k, Number(bind.iommufd));
    if (typeof ctx === 'number') ret = ctx;
    else {
      df.iommufd = ctx;
      ret = yield* vfio_df_open(k, df);
      if (ret < 0) {
        df.iommufd = null;
        yield* iommufd_ctx_put(k, ctx);
      } else {
        encodeInto(vfio_device_bind_iommufd, { out_devid: df.devid }, arg, 0);
        yield ev('WRITE(access_granted)', df.key, 'w'); // smp_store_release
        df.access_granted = true;
        yield* d.devSet.lock.unlock();
        return 0;
      }
    }
  }
  yield* d.devSet.lock.unlock();
  yield* vfio_device_unblock_group(d);
  return ret;
}

/** vfio_df_unbind_iommufd, at the release of a cdev file: nothing unless it was bound. */
export function* vfio_df_unbind_iommufd(k: Kernel, df: VfioDeviceFile): KGen {
  const d = df.device;
  if (!df.access_granted) return;
  yield* d.devSet.lock.lock();
  yield* vfio_df_close(k, df);
  const ctx = df.iommufd!;
  df.iommufd = null;
  yield* iommufd_ctx_put(k, ctx);
  yield* d.devSet.lock.unlock();
  yield* vfio_device_unblock_group(d);
}

/**
 * PASID attachment (VFIO_DEVICE_ATTACH_PASID / DETACH_PASID): the extended struct must be there
 * (-EINVAL), then the model stops: no modelled device has a PASID capability and the PASID paths
 * are not modelled (-EOPNOTSUPP, with a note).
 */
function pasidNotModelled(k: Kernel, argsz: number, xend: number): number {
  if (argsz < xend) return -E.EINVAL;
  k.note('PASID attach/detach is not modelled');
  return -E.EOPNOTSUPP;
}

/**
 * vfio_df_ioctl_attach_pt: argsz below 12 -EINVAL, unknown flags -EINVAL; then under
 * dev_set->lock the driver's attach_ioas (vfio_iommufd_physical_attach_ioas: attach, or replace
 * when attached); the id attached is written back into pt_id.
 */
export function* vfio_df_ioctl_attach_pt(k: Kernel, df: VfioDeviceFile, arg: Uint8Array): KGen<number> {
  const d = df.device;
  const minsz = offsetofend(vfio_device_attach_iommufd_pt, 'pt_id');
  if (arg.length < minsz) return -E.EFAULT;
  const attach = decode(vfio_device_attach_iommufd_pt, arg);
  const flags = Number(attach.flags);
  if (Number(attach.argsz) < minsz || flags & ~VFIO_DEVICE_ATTACH_PASID) return -E.EINVAL;
  if (flags & VFIO_DEVICE_ATTACH_PASID) return pasidNotModelled(k, Number(attach.argsz), offsetofend(vfio_device_attach_iommufd_pt, 'pasid'));
  yield* d.devSet.lock.lock();
  const r = yield* d.ops.attach_ioas(k, Number(attach.pt_id));
  if (r >= 0) encodeInto(vfio_device_attach_iommufd_pt, { pt_id: r }, arg, 0);
  yield* d.devSet.lock.unlock();
  return r < 0 ? r : 0;
}

/** vfio_df_ioctl_detach_pt: argsz below 8 or unknown flags -EINVAL; detaching a detached device is 0. */
export function* vfio_df_ioctl_detach_pt(k: Kernel, df: VfioDeviceFile, arg: Uint8Array): KGen<number> {
  const d = df.device;
  const minsz = offsetofend(vfio_device_detach_iommufd_pt, 'flags');
  if (arg.length < minsz) return -E.EFAULT;
  const detach = decode(vfio_device_detach_iommufd_pt, arg);
  const flags = Number(detach.flags);
  if (Number(detach.argsz) < minsz || flags & ~VFIO_DEVICE_DETACH_PASID) return -E.EINVAL;
  if (flags & VFIO_DEVICE_DETACH_PASID) return pasidNotModelled(k, Number(detach.argsz), offsetofend(vfio_device_detach_iommufd_pt, 'pasid'));
  yield* d.devSet.lock.lock();
  yield* d.ops.detach_ioas(k);
  yield* d.devSet.lock.unlock();
  return 0;
}
