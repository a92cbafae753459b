// What each scenario operation does: it builds the real binary arguments (ioctl structs with argsz
// computed unless given, mmap flags, config-space offsets) and makes the system call.
import type { Kernel } from '../kernel/kernel.ts';
import type { Process } from '../kernel/process.ts';
import { Completion, ev, type KGen } from '../kernel/sched/sched.ts';
import {
  sys_close, sys_dup, sys_eventfd2, sys_exit, sys_fork, sys_ioctl, sys_madvise2, sys_mmap2, sys_mprotect2, sys_mremap2, sys_munmap2, sys_open, sys_pread, user_access,
} from '../kernel/syscalls.ts';
import type { Step } from './loader.ts';
import type { IOCTL_FLAG_NAMES } from './schema.ts';
import { hex } from './values.ts';
import { E, errnoName } from '../uapi/errno.ts';
import * as M from '../uapi/mman.ts';
import * as R from '../uapi/pci_regs.ts';
import { decode, encode, encodeInto, type Layout, type StructValue } from '../uapi/struct.ts';
import {
  FEATURES, IOCTLS, IOCTL_NAME, VFIO_DEVICE_FEATURE_GET, VFIO_DEVICE_FEATURE_PROBE, VFIO_DEVICE_FEATURE_SET,
  VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_INDEX_TO_OFFSET, vfio_device_feature, vfio_device_feature_dma_buf,
  vfio_device_feature_dma_buf_memattr, vfio_device_feature_dma_buf_revoke, vfio_device_info, vfio_irq_info, vfio_pci_hot_reset,
  vfio_region_dma_range, vfio_region_info, vfio_device_attach_iommufd_pt, vfio_device_bind_iommufd, vfio_device_detach_iommufd_pt, vfio_irq_set,
  VFIO_DEVICE_ATTACH_PASID, VFIO_IRQ_SET_ACTION_MASK, CONTAINER_IOCTLS, VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_VADDR, VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, vfio_group_status, vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info, valueArg, VFIO_EXTENSIONS, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_ACTION_UNMASK, VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_TYPE_MASK, VFIO_PCI_INTX_IRQ_INDEX,
} from '../uapi/vfio.ts';
import { MADV_DONTNEED } from '../kernel/mm/madvise.ts';
import { MREMAP_MAYMOVE } from '../kernel/mm/mremap.ts';
import { CAP_EXP, CAP_PM, capLayout, type CapName, type PciDevDesc } from '../kernel/pci/device.ts';
import { VfioDevice, vfioDeviceOfFile } from '../kernel/vfio/vfio_main.ts';
import { vfio_pci_unbind } from '../kernel/vfio/pci/core.ts';
import { findIoas, isIommufdFile, sys_iommufd_open } from '../kernel/iommufd/iommufd.ts';
import { peer_dma, type DmaTarget } from '../kernel/iommufd/io_pagetable.ts';
import { iommuKey } from '../kernel/iommufd/device.ts';
import { importer_attach, importer_detach, importer_map, importer_unmap } from '../kernel/dma-buf/importer.ts';
import {
  IOMMU_IOAS_ALLOC, IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FILE, IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_IOAS_UNMAP, IOMMUFD_IOCTLS, iommu_destroy, iommu_ioas_alloc, iommu_ioas_map, iommu_ioas_map_file, iommu_ioas_unmap,
} from '../uapi/iommufd.ts';
import { KVM_IOCTLS, KVM_NOT_MODELLED, kvm_userspace_memory_region } from '../uapi/kvm.ts';
import { execKvmOp } from './kvm-ops.ts';

export type Result = { ok: true; value?: number | string; out?: Record<string, unknown> } | { errno: string } | { signal: string };
export interface OpOutcome {
  result: Result;
  /** what `as:` binds: the value, and fields readable as name.field */
  bind?: { value: bigint; out?: Record<string, bigint> };
  /** extra detail for the readable trace */
  detail?: string;
}

/** Resolves a scenario value (literal, name, name.field, sums) to a bigint. */
export type Resolver = (v: unknown) => bigint;

export const errOr = (r: number, ok: () => OpOutcome): OpOutcome => (r < 0 ? { result: { errno: errnoName(r) } } : ok());
/**
 * uAPI ioctls Linux implements that the model does not (ioeventfd, the hot-reset info query, the
 * container's dirty-page tracking): they return ENOTTY here, and the step says that this is the
 * model's gap, not the kernel's answer. VFIO_DEVICE_SET_IRQS is modelled but for INTx, which gets
 * the same note.
 */
const NOT_MODELLED = new Set<string>(['VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', 'VFIO_DEVICE_IOEVENTFD', 'VFIO_IOMMU_DIRTY_PAGES']);
export const notModelled = (name: string) => `${name}: not modelled (Linux implements it; the model answers ENOTTY)`;
const notModelledStep = (name: string, a: Record<string, unknown>, res: Resolver) =>
  NOT_MODELLED.has(name) || KVM_NOT_MODELLED.has(name) || (name === 'VFIO_DEVICE_SET_IRQS' && res(a.index ?? 0) === BigInt(VFIO_PCI_INTX_IRQ_INDEX));
export const okValue = (r: number): OpOutcome => ({ result: { ok: true, value: r }, bind: { value: BigInt(r) } });

/** The /proc/self/map_files name of the mapping at `addr`, as user space finds it in /proc/self/maps. */
function mapFilesPath(lines: string[], addr: number): string {
  for (const l of lines) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(l);
    if (m && addr >= parseInt(m[1], 16) && addr < parseInt(m[2], 16)) return `/proc/self/map_files/${m[1]}-${m[2]}`;
  }
  return `/proc/self/map_files/${addr.toString(16)}-${addr.toString(16)}`;
}

const OPEN_FLAGS: Record<string, number> = { rdonly: M.O_RDONLY, wronly: M.O_WRONLY, rdwr: M.O_RDWR, cloexec: M.O_CLOEXEC, nonblock: M.O_NONBLOCK, path: M.O_PATH };
export function openFlags(v: unknown, res: Resolver, dflt: number): number {
  if (v === undefined) return dflt;
  if (Array.isArray(v)) return (v as string[]).reduce((a, f) => a | OPEN_FLAGS[f], 0);
  return Number(res(v));
}

/**
 * A config register by name (or a number): PM_CTRL and DEVCTL sit in the device's own PM and PCIe
 * capabilities, so they need the device; without one, the default layout is assumed.
 */
export function regOffset(reg: unknown, res: Resolver, dev?: PciDevDesc): { off: number; width: number } {
  const cap = (name: CapName, dflt: number) => (dev ? capLayout(dev).find((c) => c.cap === name)?.offset ?? dflt : dflt);
  switch (reg) {
    case 'VENDOR_ID': return { off: R.PCI_VENDOR_ID, width: 2 };
    case 'DEVICE_ID': return { off: R.PCI_DEVICE_ID, width: 2 };
    case 'COMMAND': return { off: R.PCI_COMMAND, width: 2 };
    case 'STATUS': return { off: R.PCI_STATUS, width: 2 };
    case 'PM_CTRL': return { off: cap('pm', CAP_PM) + R.PCI_PM_CTRL, width: 2 };
    case 'DEVCTL': return { off: cap('exp', CAP_EXP) + R.PCI_EXP_DEVCTL, width: 2 };
  }
  if (typeof reg === 'string' && /^BAR[0-5]$/.test(reg)) return { off: R.PCI_BASE_ADDRESS_0 + 4 * Number(reg[3]), width: 4 };
  return { off: Number(res(reg)), width: 4 };
}

export function le(buf: Uint8Array, width: number): bigint {
  let v = 0n;
  for (let i = width - 1; i >= 0; i--) v = (v << 8n) | BigInt(buf[i]);
  return v;
}
function toLe(v: bigint, width: number): Uint8Array {
  const b = new Uint8Array(width);
  for (let i = 0; i < width; i++) b[i] = Number((v >> BigInt(8 * i)) & 0xffn);
  return b;
}
/** u64-typed values print as hex strings, narrower ones as numbers (README, "The command"). */
export const asJson = (v: bigint, width: number) => (width >= 8 ? hex(v) : Number(v));
export function outFields(layout: Layout, bytes: Uint8Array, skip: string[] = []): { out: Record<string, unknown>; bind: Record<string, bigint> } {
  const d = decode(layout, bytes);
  const out: Record<string, unknown> = {}, bind: Record<string, bigint> = {};
  for (const f of layout.fields) {
    if (skip.includes(f.name) || d[f.name] === undefined) continue;
    const v = BigInt(d[f.name]);
    out[f.name] = f.type === 'u64' ? hex(v) : Number(v);
    bind[f.name] = v;
  }
  return { out, bind };
}

/** The flag names an ioctl step's `flags` list may use, each the uAPI flag of the ioctl it belongs to. */
const IOCTL_FLAGS: Record<(typeof IOCTL_FLAG_NAMES)[number], number> = {
  get: VFIO_DEVICE_FEATURE_GET, set: VFIO_DEVICE_FEATURE_SET, probe: VFIO_DEVICE_FEATURE_PROBE,
  data_none: VFIO_IRQ_SET_DATA_NONE, data_bool: VFIO_IRQ_SET_DATA_BOOL, data_eventfd: VFIO_IRQ_SET_DATA_EVENTFD,
  action_mask: VFIO_IRQ_SET_ACTION_MASK, action_unmask: VFIO_IRQ_SET_ACTION_UNMASK, action_trigger: VFIO_IRQ_SET_ACTION_TRIGGER,
  readable: IOMMU_IOAS_MAP_READABLE, writeable: IOMMU_IOAS_MAP_WRITEABLE, fixed_iova: IOMMU_IOAS_MAP_FIXED_IOVA,
  pasid: VFIO_DEVICE_ATTACH_PASID,
  read: VFIO_DMA_MAP_FLAG_READ, write: VFIO_DMA_MAP_FLAG_WRITE, vaddr: VFIO_DMA_MAP_FLAG_VADDR,
  all: VFIO_DMA_UNMAP_FLAG_ALL, get_dirty_bitmap: VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
};
const ioctlFlags = (v: unknown, res: Resolver, dflt = 0): number =>
  Array.isArray(v) ? (v as Array<keyof typeof IOCTL_FLAGS>).reduce((x, f) => x | IOCTL_FLAGS[f], 0) : v !== undefined ? Number(res(v)) : dflt;
/**
 * An ioctl by name: VFIO's (<linux/vfio.h>: the device's, the group's, the container's) or
 * iommufd's (<linux/iommufd.h>), or KVM's (<linux/kvm.h>). A number shared by a container ioctl and a device ioctl reads as
 * the device's.
 */
const ALL_IOCTLS: Record<string, number> = { ...CONTAINER_IOCTLS, ...IOCTLS, ...IOMMUFD_IOCTLS, ...KVM_IOCTLS };
const IOCTL_BY_NUMBER = new Map<number, string>([...Object.entries(CONTAINER_IOCTLS), ...Object.entries(IOCTLS), ...Object.entries(IOMMUFD_IOCTLS), ...Object.entries(KVM_IOCTLS)].map(([k, v]) => [v, k]));
/** VFIO_CHECK_EXTENSION / VFIO_SET_IOMMU's argument: an extension by its uAPI name, or a number. */
export const extensionArg = (v: unknown, res: Resolver): bigint => (typeof v === 'string' && v in VFIO_EXTENSIONS ? BigInt(VFIO_EXTENSIONS[v as keyof typeof VFIO_EXTENSIONS]) : res(v ?? 0));

/**
 * Build the ioctl argument for a step: the struct, argsz (VFIO) or size (iommufd) computed unless
 * given. A field the step gives fills the struct field of that name; `fd` is the file the ioctl
 * goes to, so IOMMU_IOAS_MAP_FILE's own `fd` (the DMABUF) is given as `dmabuf_fd`.
 */
export function buildIoctl(a: Record<string, unknown>, res: Resolver): { cmd: number; arg: Uint8Array; layout: Layout | null; name: string } {
  const opName = typeof a.op === 'string' && a.op in ALL_IOCTLS ? a.op : null;
  const cmd = opName ? ALL_IOCTLS[opName] : Number(res(a.op));
  const name = opName ?? IOCTL_BY_NUMBER.get(cmd) ?? IOCTL_NAME.get(cmd) ?? `0x${cmd.toString(16)}`;
  const argsz = (dflt: number) => (a.argsz !== undefined ? Number(res(a.argsz)) : dflt);
  const simple = (layout: Layout, v: StructValue, bufsz = layout.size) => {
    const sz = argsz(bufsz);
    const buf = new Uint8Array(Math.max(bufsz, Math.min(sz, 4096)));
    encodeInto(layout, { ...v, argsz: sz }, buf, 0);
    return buf;
  };
  /** an iommufd struct: `size` first, as iommufd's ucmd reads it */
  const sized = (layout: Layout, v: StructValue) => {
    const sz = a.size !== undefined ? Number(res(a.size)) : layout.size;
    const buf = new Uint8Array(Math.max(layout.size, Math.min(sz, 4096)));
    encodeInto(layout, { ...v, size: sz }, buf, 0);
    return buf;
  };
  const opt = (v: unknown, dflt: bigint | number = 0) => (v !== undefined ? res(v) : dflt);
  switch (name) {
    case 'VFIO_DEVICE_GET_INFO': return { cmd, name, layout: vfio_device_info, arg: simple(vfio_device_info, {}) };
    case 'VFIO_DEVICE_GET_REGION_INFO': return { cmd, name, layout: vfio_region_info, arg: simple(vfio_region_info, { index: res(a.index ?? 0) }) };
    case 'VFIO_DEVICE_GET_IRQ_INFO': return { cmd, name, layout: vfio_irq_info, arg: simple(vfio_irq_info, { index: res(a.index ?? 0) }) };
    case 'VFIO_DEVICE_FEATURE': return { cmd, name, layout: null, arg: buildFeature(a, res) };
    case 'VFIO_DEVICE_PCI_HOT_RESET': return { cmd, name, layout: null, arg: simple(vfio_pci_hot_reset, { flags: res(a.hot_reset_flags ?? 0), count: res(a.count ?? 0) }) };
    case 'VFIO_DEVICE_SET_IRQS': {
      // the header, then `data`: an s32 eventfd (DATA_EVENTFD) or a u8 bool (DATA_BOOL) per vector
      const flags = ioctlFlags(a.flags, res);
      const data = ((a.data as unknown[] | undefined) ?? []).map((x) => res(x));
      const esz = (flags & VFIO_IRQ_SET_DATA_TYPE_MASK) === VFIO_IRQ_SET_DATA_BOOL ? 1 : 4;
      const hdr = vfio_irq_set.size;
      const arg = simple(vfio_irq_set, { flags, index: res(a.index ?? 0), start: opt(a.start), count: a.count !== undefined ? res(a.count) : data.length }, hdr + data.length * esz);
      const dv = new DataView(arg.buffer);
      data.forEach((x, i) => (esz === 1 ? dv.setUint8(hdr + i, Number(x)) : dv.setInt32(hdr + 4 * i, Number(BigInt.asIntN(32, x)), true)));
      return { cmd, name, layout: vfio_irq_set, arg };
    }
    case 'VFIO_DEVICE_BIND_IOMMUFD':
      return { cmd, name, layout: vfio_device_bind_iommufd, arg: simple(vfio_device_bind_iommufd, { flags: ioctlFlags(a.flags, res), iommufd: opt(a.iommufd, -1) }) };
    case 'VFIO_DEVICE_ATTACH_IOMMUFD_PT':
      return { cmd, name, layout: vfio_device_attach_iommufd_pt, arg: simple(vfio_device_attach_iommufd_pt, { flags: ioctlFlags(a.flags, res), pt_id: opt(a.pt_id), pasid: opt(a.pasid) }) };
    case 'VFIO_DEVICE_DETACH_IOMMUFD_PT':
      return { cmd, name, layout: vfio_device_detach_iommufd_pt, arg: simple(vfio_device_detach_iommufd_pt, { flags: ioctlFlags(a.flags, res), pasid: opt(a.pasid) }) };
    // the container and the group (container.ts, group.ts, vfio_iommu_type1.ts)
    case 'VFIO_GET_API_VERSION':
    case 'VFIO_GROUP_UNSET_CONTAINER':
      return { cmd, name, layout: null, arg: new Uint8Array(0) };
    case 'VFIO_CHECK_EXTENSION':
    case 'VFIO_SET_IOMMU':
      return { cmd, name, layout: null, arg: valueArg(extensionArg(a.arg, res)) };
    case 'VFIO_GROUP_GET_STATUS': return { cmd, name, layout: vfio_group_status, arg: simple(vfio_group_status, {}) };
    case 'VFIO_GROUP_SET_CONTAINER': {
      // int *: the container's fd
      const arg = new Uint8Array(4);
      new DataView(arg.buffer).setInt32(0, Number(BigInt.asIntN(32, BigInt(opt(a.container, -1)))), true);
      return { cmd, name, layout: null, arg };
    }
    case 'VFIO_GROUP_GET_DEVICE_FD':
      // char *: the device's name, NUL-terminated
      return { cmd, name, layout: null, arg: new TextEncoder().encode(`${String(a.name ?? '')}\0`) };
    case 'VFIO_IOMMU_GET_INFO': return { cmd, name, layout: vfio_iommu_type1_info, arg: simple(vfio_iommu_type1_info, {}) };
    case 'VFIO_IOMMU_MAP_DMA':
      return { cmd, name, layout: vfio_iommu_type1_dma_map, arg: simple(vfio_iommu_type1_dma_map, {
        flags: ioctlFlags(a.flags, res, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE), vaddr: opt(a.vaddr), iova: opt(a.iova), size: opt(a.size),
      }) };
    case 'VFIO_IOMMU_UNMAP_DMA':
      return { cmd, name, layout: vfio_iommu_type1_dma_unmap, arg: simple(vfio_iommu_type1_dma_unmap, { flags: ioctlFlags(a.flags, res), iova: opt(a.iova), size: opt(a.size) }) };
    case 'IOMMU_IOAS_ALLOC': return { cmd, name, layout: iommu_ioas_alloc, arg: sized(iommu_ioas_alloc, { flags: ioctlFlags(a.flags, res) }) };
    case 'IOMMU_DESTROY': return { cmd, name, layout: iommu_destroy, arg: sized(iommu_destroy, { id: opt(a.id) }) };
    case 'IOMMU_IOAS_MAP':
      return { cmd, name, layout: iommu_ioas_map, arg: sized(iommu_ioas_map, {
        flags: ioctlFlags(a.flags, res), ioas_id: opt(a.ioas_id), __reserved: opt(a.__reserved), user_va: opt(a.user_va), length: opt(a.length), iova: opt(a.iova),
      }) };
    case 'IOMMU_IOAS_MAP_FILE':
      return { cmd, name, layout: iommu_ioas_map_file, arg: sized(iommu_ioas_map_file, {
        flags: ioctlFlags(a.flags, res), ioas_id: opt(a.ioas_id), fd: opt(a.dmabuf_fd, -1), start: opt(a.start), length: opt(a.length), iova: opt(a.iova),
      }) };
    case 'KVM_SET_USER_MEMORY_REGION':
      return { cmd, name, layout: kvm_userspace_memory_region, arg: encode(kvm_userspace_memory_region, {
        slot: opt(a.slot), flags: ioctlFlags(a.flags, res), guest_phys_addr: opt(a.guest_phys_addr), memory_size: opt(a.memory_size), userspace_addr: opt(a.userspace_addr),
      }) };
    case 'IOMMU_IOAS_UNMAP': return { cmd, name, layout: iommu_ioas_unmap, arg: sized(iommu_ioas_unmap, { ioas_id: opt(a.ioas_id), iova: opt(a.iova), length: opt(a.length) }) };
    default: return { cmd, name, layout: null, arg: new Uint8Array(0) };
  }
}

function buildFeature(a: Record<string, unknown>, res: Resolver): Uint8Array {
  const dir = ioctlFlags(a.flags, res);
  const feature = typeof a.feature === 'string' && a.feature in FEATURES ? FEATURES[a.feature as keyof typeof FEATURES] : Number(res(a.feature ?? 0));
  let payload: Uint8Array;
  if (feature === FEATURES.DMA_BUF) {
    const ranges = (a.ranges as Array<{ offset: unknown; length: unknown }> | undefined) ?? [];
    const hdr = vfio_device_feature_dma_buf.size, rs = vfio_region_dma_range.size;
    payload = new Uint8Array(hdr + ranges.length * rs);
    encodeInto(vfio_device_feature_dma_buf, {
      region_index: res(a.region_index ?? 0), open_flags: openFlags(a.open_flags, res, M.O_RDWR | M.O_CLOEXEC),
      flags: res(a.dma_buf_flags ?? 0), nr_ranges: a.nr_ranges !== undefined ? res(a.nr_ranges) : ranges.length,
    }, payload, 0);
    ranges.forEach((r, i) => encodeInto(vfio_region_dma_range, { offset: res(r.offset), length: res(r.length) }, payload, hdr + i * rs));
  } else if (feature === FEATURES.DMA_BUF_REVOKE) {
    payload = encode(vfio_device_feature_dma_buf_revoke, { dmabuf_fd: res(a.dmabuf_fd ?? -1) });
  } else if (feature === FEATURES.DMA_BUF_MEMATTR) {
    const m = a.memattr === 'NC' ? 0n : a.memattr === 'WC' ? 1n : res(a.memattr ?? 0);
    payload = encode(vfio_device_feature_dma_buf_memattr, { dmabuf_fd: res(a.dmabuf_fd ?? -1), memattr: m });
  } else if (feature === FEATURES.LOW_POWER_ENTRY_WITH_WAKEUP && a.wakeup_eventfd !== undefined) {
    // struct vfio_device_low_power_entry_with_wakeup { __s32 wakeup_eventfd; __u32 reserved; }
    payload = new Uint8Array(8);
    new DataView(payload.buffer).setInt32(0, Number(BigInt.asIntN(32, res(a.wakeup_eventfd))), true);
  } else payload = new Uint8Array(0);
  const hsz = vfio_device_feature.size;
  const buf = new Uint8Array(hsz + payload.length);
  encodeInto(vfio_device_feature, { argsz: a.argsz !== undefined ? res(a.argsz) : buf.length, flags: dir | feature }, buf, 0);
  buf.set(payload, hsz);
  return buf;
}

const PROT: Record<string, number> = { read: M.PROT_READ, write: M.PROT_WRITE, exec: M.PROT_EXEC, none: M.PROT_NONE };
const MAPF: Record<string, number> = { shared: M.MAP_SHARED, private: M.MAP_PRIVATE, shared_validate: M.MAP_SHARED_VALIDATE, fixed: M.MAP_FIXED, fixed_noreplace: M.MAP_FIXED_NOREPLACE, anonymous: M.MAP_ANONYMOUS };
export const MADVICE: Record<string, number> = { dontneed: MADV_DONTNEED };
export const mremapFlags = (a: Record<string, unknown>) => ((a.flags as string[] | undefined) ?? []).reduce((x, f) => x | (f === 'maymove' ? MREMAP_MAYMOVE : 0), 0);
/** mmap's prot and flags from a step's lists (default read|write, shared) */
export const mmapProt = (a: Record<string, unknown>) => ((a.prot as string[] | undefined) ?? ['read', 'write']).reduce((x, f) => x | PROT[f], 0);
export const mmapFlags = (a: Record<string, unknown>) => ((a.flags as string[] | undefined) ?? ['shared']).reduce((x, f) => x | MAPF[f], 0);

export interface OpEnv {
  k: Kernel;
  proc: Process;
  res: Resolver;
  /** fork: make (or find) the child process and start its threads after the call */
  fork(name: string): Process;
  forked(name: string): void;
  maps(p: Process): string[];
  /** the scenario's synchronization events (post/wait), one counting completion per name */
  event(name: string): Completion;
}

/**
 * container_map / container_unmap: the raw VFIO_IOMMU_MAP_DMA / UNMAP_DMA they stand for (the
 * run, the conformance executor and its comparison all go through this).
 */
export function containerIoctlArgs(op: string, a: Record<string, unknown>): Record<string, unknown> {
  const sum = (x: unknown, y: unknown) => (y === undefined ? x : `${String(x)} + ${String(y)}`);
  const flags = a.flags !== undefined ? { flags: a.flags } : {};
  const common = { fd: a.container, iova: a.iova, size: a.length, ...flags };
  return op === 'container_map' ? { ...common, op: 'VFIO_IOMMU_MAP_DMA', vaddr: sum(a.addr, a.offset) } : { ...common, op: 'VFIO_IOMMU_UNMAP_DMA' };
}
export const isContainerStep = (op: string) => op === 'container_map' || op === 'container_unmap';

export function* execOp(env: OpEnv, s: Step): KGen<OpOutcome> {
  const { k, proc: p, res } = env;
  const a = s.args;
  // The memory syscalls take unsigned long arguments: a negative number is what C passes for it,
  // its two's complement (mmap length -1 is 2^64 - 1, which PAGE_ALIGN wraps: ENOMEM)
  const ulong = (v: unknown) => Number(BigInt.asUintN(64, res(v)));
  const addrOf = () => ulong(res(a.addr) + (a.offset !== undefined ? res(a.offset) : 0n));
  switch (s.op) {
    case 'open': {
      let path = a.proc_fd !== undefined ? `/proc/self/fd/${res(a.proc_fd)}` : (a.path as string);
      if (a.map_files !== undefined) {
        yield ev('proc_maps', p.mm.vmasKey, 'r');
        path = mapFilesPath(env.maps(p), ulong(a.map_files));
      }
      const r = yield* sys_open(k, p, path, openFlags(a.flags, res, M.O_RDWR));
      return errOr(r, () => okValue(r));
    }
    case 'eventfd': {
      const fl = ((a.flags as string[] | undefined) ?? []).reduce((x, f) => x | ({ cloexec: M.O_CLOEXEC, nonblock: M.O_NONBLOCK, semaphore: 1 } as Record<string, number>)[f], 0);
      const r = yield* sys_eventfd2(k, p, Number(res(a.initval ?? 0)), fl);
      return errOr(r, () => okValue(r));
    }
    case 'close': {
      const r = yield* sys_close(k, p, Number(res(a.fd)));
      return errOr(r, () => okValue(r));
    }
    case 'dup': {
      const r = yield* sys_dup(k, p, Number(res(a.fd)));
      return errOr(r, () => okValue(r));
    }
    case 'ioctl': {
      const { cmd, arg, layout, name } = buildIoctl(a, res);
      const r = yield* sys_ioctl(k, p, Number(res(a.fd)), cmd, arg);
      if (r === -E.ENOTTY && notModelledStep(name, a, res)) return { result: { errno: 'ENOTTY' }, detail: notModelled(name === 'VFIO_DEVICE_SET_IRQS' ? `${name} of INTx` : name) };
      return errOr(r, () => {
        if (!layout) return { ...okValue(r), detail: name };
        const { out, bind } = outFields(layout, arg, ['pad']);
        return { result: { ok: true, value: r, out }, bind: { value: BigInt(r), out: bind }, detail: name };
      });
    }
    case 'mmap': {
      const r = yield* sys_mmap2(k, p, a.addr !== undefined ? ulong(a.addr) : 0, ulong(a.length), mmapProt(a), mmapFlags(a), a.fd !== undefined ? Number(res(a.fd)) : -1, ulong(a.offset ?? 0));
      return errOr(r, () => ({ result: { ok: true, value: hex(r) }, bind: { value: BigInt(r) } }));
    }
    case 'munmap': {
      const r = yield* sys_munmap2(k, p, addrOf(), ulong(a.length));
      return errOr(r, () => okValue(r));
    }
    case 'mprotect': {
      const r = yield* sys_mprotect2(k, p, addrOf(), ulong(a.length), mmapProt(a));
      return errOr(r, () => okValue(r));
    }
    case 'madvise': {
      const r = yield* sys_madvise2(k, p, addrOf(), ulong(a.length), MADVICE[a.advice as string]);
      return errOr(r, () => okValue(r));
    }
    case 'mremap': {
      const r = yield* sys_mremap2(k, p, addrOf(), ulong(a.old_length), ulong(a.new_length), mremapFlags(a));
      return errOr(r, () => ({ result: { ok: true, value: hex(r) }, bind: { value: BigInt(r) } }));
    }
    case 'load':
    case 'store': {
      const width = Number(a.width ?? 4), write = s.op === 'store';
      const value = write ? BigInt.asUintN(8 * width, res(a.value)) : 0n;
      const va = addrOf();
      const r = yield* user_access(k, p, va, width, write, value);
      if ('signal' in r) return { result: { signal: r.signal }, detail: `${r.code} at ${hex(r.addr)}` };
      return write ? { result: { ok: true } } : { result: { ok: true, value: asJson(r.value, width) }, bind: { value: r.value } };
    }
    case 'config_read':
    case 'config_write': {
      // a named register is where this device's capability puts it
      const f = a.device === undefined ? p.files.fds.get(Number(res(a.fd)))?.file : undefined;
      const fdev = f ? vfioDeviceOfFile(f) : null;
      const dev = a.device !== undefined ? k.vfio.get(a.device as string)?.pdev.desc : fdev ? k.vfio.get(fdev.name)?.pdev.desc : undefined;
      const { off, width: w0 } = regOffset(a.reg, res, dev);
      const width = a.width !== undefined ? Number(res(a.width)) : w0;
      const write = s.op === 'config_write';
      if (a.device !== undefined) {
        // the hardware register itself, behind VFIO's back (setpci)
        const pdev = k.vfio.get(a.device as string)!.pdev;
        if (write) {
          yield* pdev.hwConfigWrite(off, width, Number(res(a.value)));
          return { result: { ok: true } };
        }
        yield ev('pci_read_config', '', 'r', undefined, [pdev.cfgSpan(off, width, 'r')]);
        const v = pdev.hwConfigRead(off, width);
        return { result: { ok: true, value: v }, bind: { value: BigInt(v) } };
      }
      const buf = write ? toLe(res(a.value), width) : new Uint8Array(width);
      const r = yield* sys_pread(k, p, Number(res(a.fd)), buf, VFIO_PCI_INDEX_TO_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX) + off, write);
      return errOr(r, () => (write ? okValue(r) : { result: { ok: true, value: Number(le(buf, r)) }, bind: { value: le(buf, r) } }));
    }
    case 'read': {
      const len = Number(res(a.length));
      const buf = new Uint8Array(Math.min(len, 1 << 20));
      const r = yield* sys_pread(k, p, Number(res(a.fd)), buf, Number(res(a.offset)), false, a.buf !== undefined ? Number(res(a.buf)) : undefined);
      // with buf: the bytes went to that user address (load them from there), not to the result
      const data = r <= 8 && a.buf === undefined;
      return errOr(r, () => ({
        result: { ok: true, value: r, out: data ? { data: asJson(le(buf, r), r) } : {} },
        bind: { value: BigInt(r), out: data ? { data: le(buf, r) } : undefined },
      }));
    }
    case 'write': {
      const width = a.width !== undefined ? Number(res(a.width)) : 4;
      const r = yield* sys_pread(k, p, Number(res(a.fd)), toLe(res(a.value), width), Number(res(a.offset)), true);
      return errOr(r, () => okValue(r));
    }
    case 'fork': {
      const child = env.fork(a.as as string);
      const r = yield* sys_fork(k, p, child);
      env.forked(a.as as string);
      return errOr(r, () => okValue(r));
    }
    case 'exit': {
      const r = yield* sys_exit(k, p);
      return errOr(r, () => okValue(r));
    }
    case 'unbind': {
      const vdev = k.vfio.get(a.device as string)!;
      if (vdev.vfio.freed) return { result: { errno: 'ENODEV' } };
      yield* vfio_pci_unbind(k, vdev);
      return { result: { ok: true } };
    }
    case 'post': {
      // user-space synchronization between the scenario's threads (a pipe write, an eventfd)
      const c = env.event(a.event as string);
      yield ev('post', c.name);
      c.complete();
      return { result: { ok: true } };
    }
    case 'wait': {
      yield* env.event(a.event as string).wait_for_completion();
      return { result: { ok: true } };
    }
    case 'maps': {
      yield ev('proc_maps', p.mm.vmasKey, 'r');
      const lines = env.maps(p);
      return { result: { ok: true, out: { lines } } };
    }
    case 'container_map':
    case 'container_unmap':
      return yield* execOp(env, { ...s, op: 'ioctl', args: containerIoctlArgs(s.op, a) });
    case 'iommufd_open':
    case 'ioas_alloc':
    case 'iommufd_map':
    case 'iommufd_unmap':
    case 'dma_read':
    case 'dma_write':
    case 'dmabuf_attach':
    case 'dmabuf_map':
    case 'dmabuf_unmap':
    case 'dmabuf_detach':
      return yield* execImportOp(env, s);
    case 'kvm_create_vm':
    case 'kvm_set_memory_region':
    case 'guest_load':
    case 'guest_store':
      return yield* execKvmOp(env, s);
  }
}

const IOMMU_MAP_FLAGS: Record<string, number> = { readable: IOMMU_IOAS_MAP_READABLE, writeable: IOMMU_IOAS_MAP_WRITEABLE, fixed_iova: IOMMU_IOAS_MAP_FIXED_IOVA };

/** The iommufd fd a step's ioctl goes to: `iommufd:` if given, else the context holding `ioas`. */
function* iommufdFdOf(env: OpEnv, a: Record<string, unknown>): KGen<number> {
  const { k, proc: p, res } = env;
  if (a.iommufd !== undefined) return Number(res(a.iommufd));
  const hit = yield* findIoas(k, p, null, Number(res(a.ioas)));
  if (hit) return hit.fd;
  // no context of this process has that IOAS: ask the first one (ENOENT), or fail on no fd (EBADF)
  for (const [fd, e] of [...p.files.fds].sort((x, y) => x[0] - y[0])) if (isIommufdFile(e.file)) return fd;
  return -1;
}

/**
 * The iommufd and importer operations. A peer device's DMA that the IOMMU refuses (no translation
 * for the IOVA, or a mapping without the needed permission) is reported as `{ "errno": "EIO" }`
 * with "IOMMU fault at iova …" in the step's detail: a step's result is exactly ok, errno or signal
 * (README, "The command"), and a dropped DMA transaction reaches the device's driver as an I/O
 * error (vfio-pci's own BAR read with memory disabled is EIO too).
 */
function* execImportOp(env: OpEnv, s: Step): KGen<OpOutcome> {
  const { k, proc: p, res } = env;
  const a = s.args;
  const addrOf = () => Number(BigInt.asUintN(64, res(a.addr) + (a.offset !== undefined ? res(a.offset) : 0n)));
  switch (s.op) {
    case 'iommufd_open': {
      const cloexec = ((a.flags as string[] | undefined) ?? []).includes('cloexec');
      const r = yield* sys_iommufd_open(k, p, M.O_RDWR | (cloexec ? M.O_CLOEXEC : 0));
      return errOr(r, () => ({ ...okValue(r), detail: 'open /dev/iommu' }));
    }
    case 'ioas_alloc': {
      const arg = encode(iommu_ioas_alloc, { size: iommu_ioas_alloc.size, flags: res(a.flags ?? 0) });
      const r = yield* sys_ioctl(k, p, Number(res(a.iommufd)), IOMMU_IOAS_ALLOC, arg);
      return errOr(r, () => {
        const id = Number(decode(iommu_ioas_alloc, arg).out_ioas_id);
        return { result: { ok: true, value: id, out: { out_ioas_id: id } }, bind: { value: BigInt(id), out: { out_ioas_id: BigInt(id) } }, detail: 'IOMMU_IOAS_ALLOC' };
      });
    }
    case 'iommufd_map': {
      let flags: number;
      if (a.flags === undefined) flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE | (a.iova !== undefined ? IOMMU_IOAS_MAP_FIXED_IOVA : 0);
      else if (Array.isArray(a.flags)) flags = (a.flags as string[]).reduce((x, f) => x | IOMMU_MAP_FLAGS[f], 0);
      else flags = Number(res(a.flags));
      // a DMABUF (`fd`) is IOMMU_IOAS_MAP_FILE; user memory (`addr`) is IOMMU_IOAS_MAP
      const file = a.fd !== undefined;
      const [layout, cmd, name] = file ? [iommu_ioas_map_file, IOMMU_IOAS_MAP_FILE, 'IOMMU_IOAS_MAP_FILE'] as const : [iommu_ioas_map, IOMMU_IOAS_MAP, 'IOMMU_IOAS_MAP'] as const;
      const iova0 = a.iova !== undefined ? res(a.iova) : 0n;
      const arg = file
        ? encode(iommu_ioas_map_file, { size: layout.size, flags, ioas_id: res(a.ioas), fd: res(a.fd), start: res(a.start ?? 0), length: res(a.length), iova: iova0 })
        : encode(iommu_ioas_map, { size: layout.size, flags, ioas_id: res(a.ioas), user_va: BigInt(addrOf()), length: res(a.length), iova: iova0 });
      const fd = yield* iommufdFdOf(env, a);
      const r = yield* sys_ioctl(k, p, fd, cmd, arg);
      return errOr(r, () => {
        const iova = decode(layout, arg).iova as bigint;
        return { result: { ok: true, value: hex(iova), out: { iova: hex(iova) } }, bind: { value: iova, out: { iova } }, detail: name };
      });
    }
    case 'iommufd_unmap': {
      const arg = encode(iommu_ioas_unmap, { size: iommu_ioas_unmap.size, ioas_id: res(a.ioas), iova: res(a.iova), length: res(a.length) });
      const fd = yield* iommufdFdOf(env, a);
      const r = yield* sys_ioctl(k, p, fd, IOMMU_IOAS_UNMAP, arg);
      return errOr(r, () => {
        const len = decode(iommu_ioas_unmap, arg).length as bigint;
        return { result: { ok: true, value: hex(len), out: { length: hex(len) } }, bind: { value: len, out: { length: len } }, detail: 'IOMMU_IOAS_UNMAP' };
      });
    }
    case 'dma_read':
    case 'dma_write': {
      const width = a.width !== undefined ? Number(res(a.width)) : 4;
      const write = s.op === 'dma_write';
      const iova = Number(res(a.iova) + (a.offset !== undefined ? res(a.offset) : 0n));
      const value = write ? BigInt.asUintN(8 * width, res(a.value)) : 0n;
      let ioas: DmaTarget;
      if (a.device !== undefined) {
        // a device bound to iommufd DMAs through the domain of the IOAS it is attached to; a device
        // whose group is in a container with an IOMMU set, through the container's type1 domain;
        // otherwise it sits in the blocking domain and every DMA faults
        const vdev = k.vfio.get(a.device as string) ?? [...k.vfio.values()].find((v) => v.vfio.devName === a.device)!;
        yield ev('dma_domain', iommuKey(vdev.name), 'r');
        const idev = vdev.vfio.iommufd_device;
        const group = vdev.vfio.group;
        yield ev('dma_domain', group.iommuKey, 'r');
        if (idev?.ioas) ioas = idev.ioas;
        else if (group.domain) ioas = { domain: group.domain, name: `${group.container?.name ?? 'container'} (group ${group.id})` };
        else return { result: { errno: 'EIO' }, detail: `IOMMU fault: ${vdev.name} is ${idev ? 'not attached to an IOAS' : 'neither bound to an iommufd nor in a container with an IOMMU'} (blocking domain)` };
      } else {
        const hit = yield* findIoas(k, p, a.iommufd !== undefined ? Number(res(a.iommufd)) : null, a.ioas !== undefined ? Number(res(a.ioas)) : null);
        if (!hit) return { result: { errno: 'ENOENT' }, detail: 'no such IOAS in this process (a peer device DMAs through an IOAS of an open iommufd)' };
        ioas = hit.ioas;
      }
      const r = yield* peer_dma(k, ioas, iova, width, write, value);
      if ('fault' in r) return { result: { errno: 'EIO' }, detail: r.fault };
      const detail = `${ioas.name} iova ${hex(iova)}`;
      return write ? { result: { ok: true }, detail } : { result: { ok: true, value: asJson(r.value, width) }, bind: { value: r.value }, detail };
    }
    case 'dmabuf_attach': {
      const flag = (v: unknown, dflt: boolean) => (v === undefined ? dflt : Number(v) !== 0);
      const r = yield* importer_attach(k, p, Number(res(a.fd)), { dynamic: flag(a.dynamic, true), peer2peer: flag(a.peer2peer, true), revocable: flag(a.revocable, true) });
      return errOr(r, () => okValue(r));
    }
    case 'dmabuf_map': {
      const r = yield* importer_map(k, Number(res(a.attach)));
      return errOr(r, () => okValue(r));
    }
    case 'dmabuf_unmap': {
      const r = yield* importer_unmap(k, Number(res(a.attach)));
      return errOr(r, () => okValue(r));
    }
    case 'dmabuf_detach': {
      const r = yield* importer_detach(k, Number(res(a.attach)));
      return errOr(r, () => okValue(r));
    }
  }
  throw new Error(`not an import operation: ${s.op}`);
}
