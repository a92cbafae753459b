// drivers/vfio/iommufd.c: VFIO's side of iommufd. vfio_df_iommufd_bind / _unbind call the device's
// bind_iommufd / unbind_iommufd ops at first open and last close of a cdev file; a physical device
// (vfio-pci) uses the vfio_iommufd_physical_* ops, which bind the device to the context as an
// iommufd_device and attach it to an IOAS (drivers/iommu/iommufd/device.c, here iommufd/device.ts).
import type { Kernel } from '../kernel.ts';
import { ev, type KGen } from '../sched/sched.ts';
import { iommufd_device_attach, iommufd_device_bind, iommufd_device_detach, iommufd_device_unbind, iommuKey } from '../iommufd/device.ts';
import type { IommufdCtx } from '../iommufd/iommufd.ts';
import type { VfioDevice, VfioDeviceFile, VfioDeviceOps } from './vfio_main.ts';
import { E } from '../../uapi/errno.ts';

/** vfio_df_iommufd_bind: the device id goes to df->devid. */
export function* vfio_df_iommufd_bind(k: Kernel, df: VfioDeviceFile): KGen<number> {
  const r = yield* df.device.ops.bind_iommufd(k, df.iommufd!);
  if (r >= 0) df.devid = r;
  return r;
}

export function* vfio_df_iommufd_unbind(k: Kernel, df: VfioDeviceFile): KGen {
  yield* df.device.ops.unbind_iommufd(k);
}

/** The iommufd ops of a physical device: vfio_iommufd_physical_bind, _unbind, _attach_ioas, _detach_ioas. */
export function vfio_iommufd_physical_ops(d: VfioDevice): Pick<VfioDeviceOps, 'bind_iommufd' | 'unbind_iommufd' | 'attach_ioas' | 'detach_ioas'> {
  return {
    *bind_iommufd(k: Kernel, ctx: IommufdCtx) {
      const idev = yield* iommufd_device_bind(k, ctx, d.name);
      yield ev('bind_dev', iommuKey(d.name), 'w');
      d.iommufd_device = idev;
      return idev.id;
    },
    /** detach if attached, then unbind */
    *unbind_iommufd(k: Kernel) {
      const idev = d.iommufd_device;
      if (!idev) return;
      if (idev.ioas) yield* iommufd_device_detach(k, idev);
      yield* iommufd_device_unbind(k, idev);
      yield ev('unbind_dev', iommuKey(d.name), 'w');
      d.iommufd_device = null;
    },
    /** iommufd_device_attach, or iommufd_device_replace when attached already */
    *attach_ioas(k: Kernel, ptId: number) {
      if (!d.iommufd_device) return -E.EINVAL;
      return yield* iommufd_device_attach(k, d.iommufd_device, ptId);
    },
    *detach_ioas(k: Kernel) {
      if (!d.iommufd_device?.ioas) return;
      yield* iommufd_device_detach(k, d.iommufd_device);
    },
  };
}
