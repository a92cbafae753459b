// drivers/iommu/iommufd/main.c and ioas.c: /dev/iommu contexts, their objects (IOAS and bound
// devices, device.ts), and the ioctls a VMM uses: IOMMU_IOAS_ALLOC, IOMMU_IOAS_MAP (user memory),
// IOMMU_IOAS_MAP_FILE (a DMABUF), IOMMU_IOAS_UNMAP and IOMMU_DESTROY (include/uapi/linux/iommufd.h).
// Each open of /dev/iommu is one context; closing its last fd destroys every IOAS, which unmaps
// every area and releases the DMABUF attachments. A bound device holds a reference on the context
// (iommufd_ctx_from_fd), so the context outlives the fd until the device file is closed.
//
// Object ids are per context from 1, as iommufd's xarray allocates them.
import type { Kernel } from '../kernel.ts';
import type { Process } from '../process.ts';
import { ev, type KGen } from '../sched/sched.ts';
import { AddressSpace, File, type FileOps } from '../fs/file.ts';
import { returnToUser } from '../syscalls.ts';
import { Ioas, ioas_destroy, iopt_map_file_pages, iopt_map_user_pages, iopt_unmap_iova_range, U64_MAX } from './io_pagetable.ts';
import type { IommufdDevice } from './device.ts';
import { E } from '../../uapi/errno.ts';
import { O_CLOEXEC, O_RDWR } from '../../uapi/mman.ts';
import { decode, encodeInto, type Layout } from '../../uapi/struct.ts';
import {
  IOMMU_DESTROY, IOMMU_IOAS_ALLOC, IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FILE, IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE, IOMMU_IOAS_UNMAP, iommu_destroy, iommu_ioas_alloc, iommu_ioas_map, iommu_ioas_map_file, iommu_ioas_unmap,
} from '../../uapi/iommufd.ts';

/** struct iommufd_ctx */
export class IommufdCtx {
  readonly objects = new Map<number, Ioas | IommufdDevice>();
  private nextObj = 1;
  freed = false;
  file!: File;
  constructor(readonly k: Kernel, readonly id: number) {}
  get key(): string {
    return `iommufd${this.id}.objects`;
  }
  allocId(): number {
    return this.nextObj++;
  }
  ioas(): Ioas[] {
    return [...this.objects.values()].filter((o): o is Ioas => o instanceof Ioas);
  }
}

/** iommufd_fops */
const iommufd_fops: FileOps = {
  kind: 'iommufd',
  *ioctl(k, file, cmd, arg) {
    return yield* iommufd_fops_ioctl(k, file.private_data as IommufdCtx, cmd, arg);
  },
  /** iommufd_fops_release: destroy every object; the DMABUF attachments go with the IOAS areas */
  *release(k, file) {
    const ctx = file.private_data as IommufdCtx;
    for (const ioas of ctx.ioas()) {
      yield ev('xa_erase', ctx.key);
      ctx.objects.delete(ioas.id);
      yield* ioas_destroy(k, ioas);
    }
    ctx.freed = true;
    k.iommufds.delete(ctx);
  },
};

export function isIommufdFile(f: File): boolean {
  return f.ops === iommufd_fops;
}

/** iommufd_fops_open: a new context and its file. */
export function iommufd_fops_open(k: Kernel, flags: number): File {
  const ctx = new IommufdCtx(k, k.nextId('iommufd'));
  ctx.file = new File(k.nextId('file'), iommufd_fops, new AddressSpace(`iommufd${ctx.id}`), flags & ~O_CLOEXEC, ctx, '/dev/iommu');
  k.iommufds.add(ctx);
  return ctx.file;
}

/** open("/dev/iommu", O_RDWR | flags): a new context. */
export function* sys_iommufd_open(k: Kernel, p: Process, flags = O_RDWR): KGen<number> {
  const fd = yield* p.files.alloc(iommufd_fops_open(k, flags), !!(flags & O_CLOEXEC));
  yield* returnToUser(k);
  return fd;
}

/** iommufd_get_ioas (iommufd_get_object of type IOAS): -ENOENT for no object or one of another type */
function* getIoas(ctx: IommufdCtx, id: number): KGen<Ioas | number> {
  yield ev('xa_load', ctx.key, 'r');
  const obj = ctx.objects.get(id); // an IOAS leaves the table before it is destroyed
  return obj instanceof Ioas ? obj : -E.ENOENT;
}

/** The ucmd size rule: `size` below the struct's minimum is -EINVAL (larger sizes are accepted). */
function ucmd<L extends Layout>(layout: L, arg: Uint8Array): Record<string, number | bigint> | number {
  if (arg.length < 4) return -E.EFAULT;
  const d = decode(layout, arg);
  if (Number(d.size) < layout.size || arg.length < layout.size) return -E.EINVAL;
  return d;
}

function* iommufd_fops_ioctl(k: Kernel, ctx: IommufdCtx, cmd: number, arg: Uint8Array): KGen<number> {
  switch (cmd) {
    case IOMMU_IOAS_ALLOC: {
      const d = ucmd(iommu_ioas_alloc, arg);
      if (typeof d === 'number') return d;
      if (Number(d.flags) !== 0) return -E.EOPNOTSUPP;
      yield ev('xa_alloc', ctx.key);
      const ioas = new Ioas(k, ctx, ctx.allocId());
      ctx.objects.set(ioas.id, ioas);
      encodeInto(iommu_ioas_alloc, { out_ioas_id: ioas.id }, arg, 0);
      k.note(`${ioas.name} allocated`);
      return 0;
    }
    case IOMMU_DESTROY: {
      const d = ucmd(iommu_destroy, arg);
      if (typeof d === 'number') return d;
      // iommufd_object_remove: the object must have no other user (an attached device on an
      // IOAS; the bound driver on a device object), else -EBUSY
      yield ev('xa_load', ctx.key, 'r');
      const obj = ctx.objects.get(Number(d.id));
      if (!obj) return -E.ENOENT;
      if (!(obj instanceof Ioas) || obj.devices.size) return -E.EBUSY;
      const ioas = obj;
      yield ev('xa_erase', ctx.key);
      ctx.objects.delete(ioas.id);
      yield* ioas_destroy(k, ioas);
      return 0;
    }
    case IOMMU_IOAS_MAP: return yield* iommufd_ioas_map(k, ctx, arg);
    case IOMMU_IOAS_MAP_FILE: return yield* iommufd_ioas_map_file(k, ctx, arg);
    case IOMMU_IOAS_UNMAP: {
      const d = ucmd(iommu_ioas_unmap, arg);
      if (typeof d === 'number') return d;
      const ioas = yield* getIoas(ctx, Number(d.ioas_id));
      if (typeof ioas === 'number') return ioas;
      const iova = d.iova as bigint, length = d.length as bigint;
      let last: number;
      if (iova === 0n && length === 2n ** 64n - 1n) last = U64_MAX; // unmap everything
      else {
        if (iova >= 2n ** 64n - 1n || length >= 2n ** 64n - 1n) return -E.EOVERFLOW;
        if (length === 0n) return -E.EINVAL;
        if (iova + length - 1n > 2n ** 64n - 1n) return -E.EOVERFLOW;
        last = Number(iova + length - 1n);
      }
      const r = yield* iopt_unmap_iova_range(k, ioas, Number(iova), last);
      if (r < 0) return r;
      encodeInto(iommu_ioas_unmap, { length: BigInt(r) }, arg, 0);
      return 0;
    }
    default:
      return -E.ENOTTY;
  }
}

/**
 * iommufd_ioas_map_file, in its order: unknown flags -EOPNOTSUPP; iova or length of ULONG_MAX or more
 * -EOVERFLOW; neither READABLE nor WRITEABLE -EINVAL; no such IOAS -ENOENT; then the length, the fd
 * and the pages (iopt_map_file_pages in io_pagetable.ts). The IOVA is written back into the struct.
 */
function* iommufd_ioas_map_file(k: Kernel, ctx: IommufdCtx, arg: Uint8Array): KGen<number> {
  const d = ucmd(iommu_ioas_map_file, arg);
  if (typeof d === 'number') return d;
  const flags = Number(d.flags);
  if (flags & ~(IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE)) return -E.EOPNOTSUPP;
  const iova = d.iova as bigint, length = d.length as bigint, start = d.start as bigint;
  if (iova >= 2n ** 64n - 1n || length >= 2n ** 64n - 1n) return -E.EOVERFLOW;
  if (!(flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE))) return -E.EINVAL;
  const ioas = yield* getIoas(ctx, Number(d.ioas_id));
  if (typeof ioas === 'number') return ioas;
  const r = yield* iopt_map_file_pages(k, ioas, k.currentProcess(), Number(d.fd), start, length, flags & IOMMU_IOAS_MAP_FIXED_IOVA ? Number(iova) : null, flags);
  if (r < 0) return r;
  encodeInto(iommu_ioas_map_file, { iova: BigInt(r) }, arg, 0);
  return 0;
}

/**
 * iommufd_ioas_map (IOMMU_IOAS_MAP of user memory), in its order: unknown flags or a nonzero
 * __reserved -EOPNOTSUPP; iova or length of ULONG_MAX or more -EOVERFLOW; neither READABLE nor
 * WRITEABLE -EINVAL; no such IOAS -ENOENT; then iopt_map_user_pages (io_pagetable.ts), which pins
 * the caller's pages. The IOVA is written back into the struct.
 */
function* iommufd_ioas_map(k: Kernel, ctx: IommufdCtx, arg: Uint8Array): KGen<number> {
  const d = ucmd(iommu_ioas_map, arg);
  if (typeof d === 'number') return d;
  const flags = Number(d.flags);
  if (flags & ~(IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE) || Number(d.__reserved)) return -E.EOPNOTSUPP;
  const iova = d.iova as bigint, length = d.length as bigint;
  if (iova >= 2n ** 64n - 1n || length >= 2n ** 64n - 1n) return -E.EOVERFLOW;
  if (!(flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE))) return -E.EINVAL;
  const ioas = yield* getIoas(ctx, Number(d.ioas_id));
  if (typeof ioas === 'number') return ioas;
  const r = yield* iopt_map_user_pages(k, ioas, k.currentProcess().mm, Number(d.user_va as bigint), Number(length), flags & IOMMU_IOAS_MAP_FIXED_IOVA ? Number(iova) : null, flags);
  if (r < 0) return r;
  encodeInto(iommu_ioas_map, { iova: BigInt(r) }, arg, 0);
  return 0;
}

/**
 * Which IOAS a scenario step means: `iommufd` (an fd of the calling process) and/or `ioas` (an id).
 * With only an id, the calling process's iommufd contexts are searched in fd order; with only an
 * fd, the context must hold exactly one IOAS. Returns null when nothing matches.
 */
export function* findIoas(k: Kernel, p: Process, iommufdFd: number | null, ioasId: number | null): KGen<{ ioas: Ioas; fd: number } | null> {
  yield ev('fdtable_lookup', p.files.key, 'r');
  const ctxs: Array<{ ctx: IommufdCtx; fd: number }> = [];
  for (const [fd, e] of [...p.files.fds].sort((a, b) => a[0] - b[0])) {
    if (iommufdFd !== null && fd !== iommufdFd) continue;
    if (!isIommufdFile(e.file) || ctxs.some((c) => c.ctx === e.file.private_data)) continue;
    ctxs.push({ ctx: e.file.private_data as IommufdCtx, fd });
  }
  for (const { ctx, fd } of ctxs) {
    yield ev('xa_load', ctx.key, 'r');
    const list = ctx.ioas();
    if (ioasId === null) return list.length === 1 ? { ioas: list[0], fd } : null;
    const hit = list.find((i) => i.id === ioasId);
    if (hit) return { ioas: hit, fd };
  }
  return null;
}
