// drivers/iommu/iommufd/device.c: the iommufd_device object a physical device gets when a driver
// binds it to an iommufd context (iommufd_device_bind, what VFIO_DEVICE_BIND_IOMMUFD reaches through
// vfio_iommufd_physical_bind), and its attachment to an IOAS (iommufd_device_attach / _replace /
// _detach, what VFIO_DEVICE_ATTACH_IOMMUFD_PT and DETACH reach). Attaching to an IOAS puts the device
// behind the IOAS's paging domain (the auto-domain iommufd_hwpt_paging_alloc makes, one per IOAS in
// the model); detached, the device sits in the blocking domain and every DMA it makes faults.
//
// Object ids come from the context's table (IOAS and devices share it, as iommufd's xarray does).
// The bound driver holds a user of the device object (iommufd_device_bind: "the calling driver is a
// user until iommufd_device_unbind"), and an attachment holds one of the IOAS, so IOMMU_DESTROY of
// either is -EBUSY while that lasts.
import type { Kernel } from '../kernel.ts';
import { ev, type KGen } from '../sched/sched.ts';
import { fput, get_file, type File } from '../fs/file.ts';
import { E } from '../../uapi/errno.ts';
import { Ioas } from './io_pagetable.ts';
import type { IommufdCtx } from './iommufd.ts';
import { isIommufdFile } from './iommufd.ts';

/**
 * The scheduling object of a device's IOMMU attachment (which domain translates its DMA): attach
 * and detach write it, with the context's object table (the IOAS's users); the device's DMA reads it.
 */
export const iommuKey = (dev: string) => `${dev}.iommu`;

/** struct iommufd_device */
export class IommufdDevice {
  /** the IOAS whose domain the device is attached to (idev->igroup->hwpt), or null: blocked */
  ioas: Ioas | null = null;
  unbound = false;
  constructor(readonly ctx: IommufdCtx, readonly id: number, readonly dev: string) {}
}

/**
 * iommufd_ctx_from_fd: the context behind an fd, holding a reference on its file until
 * iommufd_ctx_put: -EBADF for no such fd, -EBADFD for a file that is not /dev/iommu.
 */
export function* iommufd_ctx_from_fd(k: Kernel, fd: number): KGen<IommufdCtx | number> {
  const f = yield* k.currentProcess().files.fget(k, fd);
  if (typeof f === 'number') return -E.EBADF;
  if (!isIommufdFile(f)) {
    yield* fput(k, f);
    return -E.EBADFD;
  }
  return f.private_data as IommufdCtx; // the fget reference is the context's
}
/** iommufd_ctx_put: drop the file reference iommufd_ctx_from_fd took. */
export function* iommufd_ctx_put(k: Kernel, ctx: IommufdCtx): KGen {
  yield* fput(k, ctx.file);
}
/** iommufd_ctx_get: another reference on a context already held. */
export function* iommufd_ctx_get(k: Kernel, ctx: IommufdCtx): KGen<File> {
  return yield* get_file(k, ctx.file);
}

/** iommufd_device_bind: a new device object in the context; the value is its id (out_devid). */
export function* iommufd_device_bind(k: Kernel, ctx: IommufdCtx, dev: string): KGen<IommufdDevice> {
  yield ev('xa_alloc', ctx.key);
  const idev = new IommufdDevice(ctx, ctx.allocId(), dev);
  ctx.objects.set(idev.id, idev);
  k.note(`${dev} bound to iommufd${ctx.id} as device ${idev.id}`);
  return idev;
}

/** iommufd_device_unbind: detach if attached, then the object goes. */
export function* iommufd_device_unbind(k: Kernel, idev: IommufdDevice): KGen {
  if (idev.ioas) yield* iommufd_device_detach(k, idev);
  yield ev('xa_erase', idev.ctx.key);
  idev.ctx.objects.delete(idev.id);
  idev.unbound = true;
  k.note(`${idev.dev} unbound from iommufd${idev.ctx.id}`);
}

/**
 * iommufd_device_attach, and iommufd_device_replace when already attached (vfio's
 * physical_attach_ioas picks one by iommufd_attached): `pt_id` must name an IOAS of the context
 * (-ENOENT for no object, -EINVAL for another kind: hardware page tables are not modelled). The
 * device's DMA is translated by that IOAS's domain from now on. Returns the attached id.
 */
export function* iommufd_device_attach(k: Kernel, idev: IommufdDevice, ptId: number): KGen<number> {
  yield ev('xa_load', idev.ctx.key, 'r');
  const obj = idev.ctx.objects.get(ptId);
  if (!obj) return -E.ENOENT;
  if (!(obj instanceof Ioas)) return -E.EINVAL;
  yield ev('attach_dev', iommuKey(idev.dev), 'w', [{ obj: idev.ctx.key, acc: 'w' }]);
  if (idev.ioas) idev.ioas.devices.delete(idev);
  idev.ioas = obj;
  obj.devices.add(idev);
  k.note(`${idev.dev} attached to ${obj.name}`);
  return obj.id;
}

/** iommufd_device_detach: back to the blocking domain. */
export function* iommufd_device_detach(k: Kernel, idev: IommufdDevice): KGen {
  if (!idev.ioas) return;
  yield ev('detach_dev', iommuKey(idev.dev), 'w', [{ obj: idev.ctx.key, acc: 'w' }]);
  idev.ioas.devices.delete(idev);
  k.note(`${idev.dev} detached from ${idev.ioas.name}`);
  idev.ioas = null;
}
