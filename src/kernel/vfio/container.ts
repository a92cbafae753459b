// drivers/vfio/container.c: the legacy container, /dev/vfio/vfio. Each open is a container (a
// kref'd object that lives while its file or any group attached to it does); VFIO_GET_API_VERSION,
// VFIO_CHECK_EXTENSION (asked of the IOMMU drivers while none is set, then of the one set) and
// VFIO_SET_IOMMU, which needs a group attached and picks the registered driver that supports the
// requested type (type1 only: Debian's and the modelled kernels have no noiommu mode); every other
// ioctl goes to that driver (vfio_iommu_type1.ts), -EINVAL while none is set. Groups attach with
// VFIO_GROUP_SET_CONTAINER (group.ts).
import type { Kernel } from '../kernel.ts';
import type { Process } from '../process.ts';
import { ev, RwSem, type KGen } from '../sched/sched.ts';
import { AddressSpace, File, type FileOps } from '../fs/file.ts';
import type { IommuDomain } from '../iommufd/io_pagetable.ts';
import { E } from '../../uapi/errno.ts';
import { O_CLOEXEC } from '../../uapi/mman.ts';
import { argValue, IOCTLS, VFIO_API_VERSION } from '../../uapi/vfio.ts';
import type { VfioGroup } from './group.ts';
import { vfio_iommu_driver_ops_type1 } from './vfio_iommu_type1.ts';

/** struct vfio_iommu_driver_ops: what an IOMMU driver (type1) plugs into the container. */
export interface VfioIommuDriverOps {
  name: string;
  /** the driver's data for a container, or -errno */
  open(k: Kernel, arg: number): unknown | number;
  release(k: Kernel, data: unknown): KGen;
  /** data is null for CHECK_EXTENSION asked before an IOMMU is set */
  ioctl(k: Kernel, data: unknown | null, cmd: number, arg: Uint8Array): KGen<number>;
  attach_group(k: Kernel, data: unknown, group: VfioGroup): KGen<number>;
  detach_group(k: Kernel, data: unknown, group: VfioGroup): KGen;
  /** the model's view of the driver's IOMMU domains (for the invariants and device DMA) */
  domains(data: unknown): IommuDomain[];
}

/** vfio.iommu_drivers_list: the registered IOMMU drivers (vfio_iommu_type1 registers at module load). */
export const IOMMU_DRIVERS: readonly VfioIommuDriverOps[] = [vfio_iommu_driver_ops_type1];

/** struct vfio_container */
export class VfioContainer {
  /** kref: the file's reference and one per attached group */
  kref = 1;
  readonly group_list: VfioGroup[] = [];
  readonly group_lock: RwSem;
  iommu_driver: VfioIommuDriverOps | null = null;
  iommu_data: unknown = null;
  freed = false;
  constructor(k: Kernel, readonly id: number) {
    this.group_lock = new RwSem(k.sched, `container${id}.group_lock`, 'vfio_container.group_lock');
  }
  get name(): string {
    return `container${this.id}`;
  }
}

function vfio_container_get(c: VfioContainer): void {
  c.kref++;
}
function vfio_container_put(k: Kernel, c: VfioContainer): void {
  if (--c.kref === 0) {
    c.freed = true;
    k.vfioContainers.delete(c);
  }
}

/** vfio_container_ioctl_check_extension: the driver set, else the first registered driver that says yes. */
function* vfio_container_ioctl_check_extension(k: Kernel, c: VfioContainer, arg: Uint8Array): KGen<number> {
  yield* c.group_lock.down_read();
  let ret = 0;
  if (c.iommu_driver) ret = yield* c.iommu_driver.ioctl(k, c.iommu_data, IOCTLS.VFIO_CHECK_EXTENSION, arg);
  else
    for (const drv of IOMMU_DRIVERS) {
      ret = yield* drv.ioctl(k, null, IOCTLS.VFIO_CHECK_EXTENSION, arg);
      if (ret > 0) break;
    }
  yield* c.group_lock.up_read();
  return ret;
}

/**
 * vfio_ioctl_set_iommu: -EINVAL with no group attached or a driver already set; otherwise the first
 * driver that supports the type opens and attaches every group (__vfio_container_attach_groups);
 * -ENODEV when none does.
 */
function* vfio_ioctl_set_iommu(k: Kernel, c: VfioContainer, arg: Uint8Array): KGen<number> {
  yield* c.group_lock.down_write();
  let ret = -E.ENODEV;
  if (!c.group_list.length || c.iommu_driver) ret = -E.EINVAL;
  else {
    const type = Number(argValue(arg));
    for (const drv of IOMMU_DRIVERS) {
      if ((yield* drv.ioctl(k, null, IOCTLS.VFIO_CHECK_EXTENSION, arg)) <= 0) continue;
      const data = drv.open(k, type);
      if (typeof data === 'number') {
        ret = data;
        continue;
      }
      ret = 0;
      const done: VfioGroup[] = [];
      for (const g of c.group_list) {
        ret = yield* drv.attach_group(k, data, g);
        if (ret) break;
        done.push(g);
      }
      if (ret) {
        for (const g of done.reverse()) yield* drv.detach_group(k, data, g);
        yield* drv.release(k, data);
        continue;
      }
      c.iommu_driver = drv;
      c.iommu_data = data;
      k.note(`${c.name}: IOMMU set (${drv.name}, type ${type})`);
      break;
    }
  }
  yield* c.group_lock.up_write();
  return ret;
}

/** vfio_fops: the container file. */
const vfio_fops: FileOps = {
  kind: 'vfio-container',
  /** vfio_fops_unl_ioctl: API version, extensions, SET_IOMMU; the rest to the driver, -EINVAL with none */
  *ioctl(k, file, cmd, arg) {
    const c = file.private_data as VfioContainer;
    switch (cmd) {
      case IOCTLS.VFIO_GET_API_VERSION:
        return VFIO_API_VERSION;
      case IOCTLS.VFIO_CHECK_EXTENSION:
        return yield* vfio_container_ioctl_check_extension(k, c, arg);
      case IOCTLS.VFIO_SET_IOMMU:
        return yield* vfio_ioctl_set_iommu(k, c, arg);
      default: {
        yield* c.group_lock.down_read(); // the driver cannot go while a group holds it
        const drv = c.iommu_driver, data = c.iommu_data;
        yield* c.group_lock.up_read();
        return drv ? yield* drv.ioctl(k, data, cmd, arg) : -E.EINVAL;
      }
    }
  },
  /** vfio_fops_release: the file's reference; attached groups keep the container (and its mappings) */
  *release(k, file) {
    const c = file.private_data as VfioContainer;
    yield ev('container_put', c.name);
    vfio_container_put(k, c);
  },
};

/** vfio_container_from_file */
export function vfio_container_from_file(f: File): VfioContainer | null {
  return f.ops === vfio_fops ? (f.private_data as VfioContainer) : null;
}

/** vfio_fops_open: open("/dev/vfio/vfio"), a new container. */
export function* vfio_fops_open(k: Kernel, p: Process, flags: number): KGen<number> {
  const c = new VfioContainer(k, k.nextId('vfio-container'));
  k.vfioContainers.add(c);
  const f = new File(k.nextId('file'), vfio_fops, new AddressSpace(c.name), flags & ~O_CLOEXEC, c, '/dev/vfio/vfio');
  return yield* p.files.alloc(f, !!(flags & O_CLOEXEC));
}

/**
 * vfio_container_attach_group, under group->group_lock: claim DMA ownership of the group (its
 * kernel driver's DMA API domain is left), attach it to the driver if one is set, and take a
 * container reference.
 */
export function* vfio_container_attach_group(k: Kernel, c: VfioContainer, g: VfioGroup): KGen<number> {
  yield* c.group_lock.down_write();
  let ret = 0;
  if (c.iommu_driver) ret = yield* c.iommu_driver.attach_group(k, c.iommu_data, g);
  if (!ret) {
    g.container = c;
    g.container_users = 1;
    c.group_list.push(g);
    vfio_container_get(c);
    k.note(`group ${g.id} set to ${c.name}`);
  }
  yield* c.group_lock.up_write();
  return ret;
}

/**
 * vfio_group_detach_container, under group->group_lock: detach from the driver, and when it was the
 * last group, release the driver (its mappings go) and return the container to "no IOMMU".
 */
export function* vfio_group_detach_container(k: Kernel, g: VfioGroup): KGen {
  const c = g.container!;
  yield* c.group_lock.down_write();
  const drv = c.iommu_driver;
  if (drv) yield* drv.detach_group(k, c.iommu_data, g);
  g.container = null;
  g.container_users = 0;
  c.group_list.splice(c.group_list.indexOf(g), 1);
  if (drv && !c.group_list.length) {
    yield* drv.release(k, c.iommu_data);
    c.iommu_driver = null;
    c.iommu_data = null;
    k.note(`${c.name}: last group gone, IOMMU released`);
  }
  yield* c.group_lock.up_write();
  vfio_container_put(k, c);
}

/** vfio_group_use_container: a device opened through the group needs the container's IOMMU set (-EINVAL). */
export function vfio_group_use_container(g: VfioGroup): number {
  if (!g.container || !g.container.iommu_driver) return -E.EINVAL;
  g.container_users++;
  return 0;
}
export function vfio_group_unuse_container(g: VfioGroup): void {
  g.container_users--;
}

/** Every IOMMU domain of the live containers (for the invariants). */
export function containerDomains(k: Kernel): Set<IommuDomain> {
  const out = new Set<IommuDomain>();
  for (const c of k.vfioContainers) if (c.iommu_driver) for (const d of c.iommu_driver.domains(c.iommu_data)) out.add(d);
  return out;
}
