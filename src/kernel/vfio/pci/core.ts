// drivers/vfio/pci/vfio_pci_core.c: the vfio-pci device: enable/disable, the device ioctls, BAR
// mmap, region read/write, the huge fault handler, and the revoke helpers of patch 07.
import type { Kernel } from '../../kernel.ts';
import type { Process } from '../../process.ts';
import { ev, Mutex, RwSem, type Acc, type KGen, type Span } from '../../sched/sched.ts';
import { fput, get_file, type File, type UserBuf } from '../../fs/file.ts';
import { copy_to_user, insertPfn, unmap_mapping_range } from '../../mm/memory.ts';
import { VM_FAULT_FALLBACK, VM_FAULT_SIGBUS, faultName, type Vma, type VmFault, type VmFaultCtx, type VmOps } from '../../mm/vma.ts';
import { pci_reset_bus, type PciDev } from '../../pci/device.ts';
import { VfioDevice, vfio_check_feature, vfio_device_put_registration, vfio_device_try_get_registration, vfio_put_device, vfio_unregister_device, vfioDeviceOfFile } from '../vfio_main.ts';
import { vfio_iommufd_physical_ops } from '../iommufd.ts';
import { VfioPciIrqs, vfio_pci_get_irq_count, vfio_pci_ioctl_set_irqs, vfio_pci_irqs_disable } from './intrs.ts';
import {
  Status, findPfn, findPfnFallsBack, vfio_pci_core_feature_dma_buf, vfio_pci_core_feature_dma_buf_memattr, vfio_pci_core_feature_dma_buf_revoke,
  vfio_pci_core_mmap_prep_dmabuf, vfio_pci_dma_buf_cleanup, vfio_pci_dma_buf_move, VfioPciDmaBuf,
} from './dmabuf.ts';
import { vfio_pci_config_rw } from './config.ts';
import { eventfd_ctx_fdget } from '../../fs/eventfd.ts';
import { E } from '../../../uapi/errno.ts';
import { PAGE_SIZE } from '../../../uapi/mman.ts';
import * as R from '../../../uapi/pci_regs.ts';
import { decode, encodeInto, offsetofend } from '../../../uapi/struct.ts';
import {
  FEATURES, IOCTLS, VFIO_DEVICE_FEATURE_MASK, VFIO_DEVICE_FEATURE_SET, VFIO_DEVICE_FLAGS_PCI, VFIO_DEVICE_FLAGS_RESET, VFIO_IRQ_INFO_AUTOMASKED,
  VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_INFO_MASKABLE, VFIO_IRQ_INFO_NORESIZE, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_INDEX_TO_OFFSET, VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_NUM_IRQS, VFIO_PCI_NUM_REGIONS,
  VFIO_PCI_OFFSET_SHIFT, VFIO_PCI_ROM_REGION_INDEX, VFIO_PCI_VGA_REGION_INDEX,
  VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, VFIO_REGION_INFO_FLAG_CAPS, VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE, vfio_device_info, vfio_info_cap_header, vfio_irq_info, vfio_pci_hot_reset, vfio_region_info,
} from '../../../uapi/vfio.ts';

const PGOFF_INDEX_SHIFT = 2 ** (VFIO_PCI_OFFSET_SHIFT - 12);

export class VfioPciCoreDevice {
  readonly memory_lock: RwSem;
  /** v6 on: protects dmabufs and bars_revoked, so the export need not take memory_lock */
  readonly dmabuf_lock: RwSem;
  /** v6 on: the revoke state the last dma_buf_move left, for new buffers' initial status */
  bars_revoked = false;
  readonly dmabufs: VfioPciDmaBuf[] = [];
  /** set at registration when the driver overrides .mmap; plain vfio-pci does not */
  zap_bars_on_revoke = false;
  /** VFIO's virtual config space (vconfig); what the user reads and what "memory enabled" looks at */
  vconfig: Uint8Array;
  pm_runtime_engaged = false;
  readonly bar_mmap_supported: boolean[] = [];
  /** igate: serializes VFIO_DEVICE_SET_IRQS; irqs: what it has set up (intrs.ts) */
  readonly igate: Mutex;
  readonly irqs = new VfioPciIrqs();
  constructor(readonly k: Kernel, readonly pdev: PciDev, readonly vfio: VfioDevice) {
    this.memory_lock = new RwSem(k.sched, `${pdev.name}.memory_lock`, 'memory_lock');
    this.igate = new Mutex(k.sched, `${pdev.name}.igate`, 'igate');
    this.dmabuf_lock = new RwSem(k.sched, `${pdev.name}.dmabuf_lock`, 'dmabuf_lock');
    this.vconfig = pdev.cfg.slice();
    for (let i = 0; i < R.PCI_STD_NUM_BARS; i++) {
      const b = pdev.bar(i);
      // vfio_pci_probe_mmaps: a memory BAR of at least a page, or a smaller page-aligned one
      this.bar_mmap_supported[i] = !!b && !b.io && b.size > 0 && (b.size >= PAGE_SIZE || b.start % PAGE_SIZE === 0);
    }
  }
  get name(): string {
    return this.pdev.name;
  }
  /**
   * The reset method pci_probe_reset_function finds, in its order, or null: FLR (PCIe), the PM
   * reset (D3hot and back, when PMCSR's No_Soft_Reset is clear), a secondary bus reset (behind a
   * bridge, and only for the one device on that bus: pci_parent_bus_reset).
   */
  get resetMethod(): 'FLR' | 'PM' | 'bus' | null {
    const d = this.pdev.desc;
    if (d.capabilities.flr) return 'FLR';
    const pm = this.pdev.capOffset(R.PCI_CAP_ID_PM);
    if (pm && !(this.pdev.hwConfigRead(pm + R.PCI_PM_CTRL, 2) & R.PCI_PM_CTRL_NO_SOFT_RESET)) return 'PM';
    if (d.bus === 'bridge' && !this.k.pci.devs.some((x) => x !== this.pdev && x.busId === this.pdev.busId)) return 'bus';
    return null;
  }
  /**
   * Whether the reset vfio_pci_core_enable tries at the first open succeeded (vdev->reset_works =
   * !ret): no method is -ENOTTY. Until then, false.
   */
  reset_works = false;
  /** Scheduling span of the virtual config space (vconfig), by byte. */
  vconfigSpan(off: number, width: number, acc: Acc): Span {
    return { space: `${this.name}.vconfig`, lo: off, hi: off + width, acc };
  }

  /** __vfio_pci_memory_enabled: shallower than D3hot and virtual COMMAND.MEMORY set. */
  memoryEnabled(): boolean {
    const cmd = this.vconfig[R.PCI_COMMAND] | (this.vconfig[R.PCI_COMMAND + 1] << 8);
    return this.pdev.power < R.PCI_D3hot && !!(cmd & R.PCI_COMMAND_MEMORY);
  }
  /** pcim_p2pdma_provider: every memory BAR has one once PCI_P2PDMA_CORE is built */
  provider(index: number): boolean {
    const b = this.pdev.bar(index);
    return this.k.config.PCI_P2PDMA_CORE && !!b && !b.io && b.size > 0;
  }
  /** vfio_pci_core_setup_barmap: the BAR was requested and iomapped at enable */
  barmapOk(index: number): boolean {
    const b = this.pdev.bar(index);
    return !!b && b.size > 0;
  }

  // ---- revocation (patch 07) ----

  /**
   * vfio_pci_revoke_bars: memory_lock held for write. Before the series the device inode is zapped
   * first (vfio_pci_zap_and_down_write_memory_lock); the series revokes the buffers first and zaps
   * the inode after, only for drivers that override .mmap (zap_bars_on_revoke) until v8, whose BAR
   * VMAs stay on the inode, always.
   */
  *revoke_bars(): KGen {
    const v = this.k.variant;
    if (v.inodeZapFirst) yield* this.zap_bars();
    if (!this.k.mut('no-revoke-dmabufs')) yield* vfio_pci_dma_buf_move(this.k, this, true);
    if (!v.inodeZapFirst && (this.zap_bars_on_revoke || v.barVmaKeepsDeviceFile)) yield* this.zap_bars();
  }
  /** vfio_pci_zap_bars: every mapping of BAR0..BAR5 through the device inode */
  *zap_bars(): KGen {
    const start = VFIO_PCI_INDEX_TO_OFFSET(0);
    yield* unmap_mapping_range(this.k, this.vfio.inode, start, VFIO_PCI_INDEX_TO_OFFSET(VFIO_PCI_ROM_REGION_INDEX) - start);
  }
  *lock_revoke_bars(): KGen {
    yield* this.memory_lock.down_write();
    yield* this.revoke_bars();
  }
  *unrevoke_bars(): KGen {
    yield* vfio_pci_dma_buf_move(this.k, this, false);
  }
  /** Called under memory_lock(write) after a change: un-revoke if memory is enabled again. */
  *unrevokeIfEnabled(): KGen {
    if (this.memoryEnabled()) yield* this.unrevoke_bars();
  }
}

/** The vfio_device_ops of vfio-pci, bound to one device. */
export function vfioPciOps(k: Kernel, vdev: VfioPciCoreDevice) {
  const pdev = vdev.pdev;
  return {
    /**
     * vfio_pci_core_enable (drivers/vfio/pci/vfio_pci_core.c): enable the function (memory decode
     * on), then pci_try_reset_function: -EAGAIN (the device lock is taken, as by an unbind in
     * progress) fails the open, anything else is remembered as reset_works; snapshot vconfig.
     */
    *open_device(k: Kernel): KGen<number> {
      yield* pdev.hwConfigWrite(R.PCI_COMMAND, 2, pdev.command() | R.PCI_COMMAND_MEMORY);
      const reset = yield* pdev.tryResetFunction(vdev.resetMethod);
      if (reset === -E.EAGAIN) {
        k.note(`${vdev.name}: enable's reset found the device locked: open fails`);
        return reset;
      }
      vdev.reset_works = reset === 0;
      yield ev('vfio_config_init', '', 'w', undefined, [vdev.vconfigSpan(0, pdev.cfgSize, 'w')]);
      vdev.vconfig = pdev.cfg.slice();
      vdev.pm_runtime_engaged = false;
      // v6's shadow state starts from the enabled device (the v6 code is not in the archive read:
      // cleanup at the last close leaves it revoked, and a new open must not inherit that)
      vdev.bars_revoked = !vdev.memoryEnabled();
      return 0;
    },
    /**
     * vfio_pci_core_close_device: revoke and detach every DMABUF, then disable the function
     * (vfio_pci_core_disable: interrupts off first, then the reset, which happens only if
     * pci_dev_trylock gets the device lock, not while an unbind holds it).
     */
    *close_device(k: Kernel): KGen {
      yield* vfio_pci_dma_buf_cleanup(k, vdev);
      yield* vfio_pci_irqs_disable(k, vdev);
      yield* vdev.memory_lock.down_write();
      if (vdev.reset_works && (yield* pdev.device_lock.trylock())) {
        yield* pdev.resetFunction('close');
        yield* pdev.device_lock.unlock();
      }
      yield* pdev.setPower(R.PCI_D0);
      yield* vdev.memory_lock.up_write();
    },
    *ioctl(k: Kernel, p: Process, cmd: number, arg: Uint8Array): KGen<number> {
      switch (cmd) {
        case IOCTLS.VFIO_DEVICE_GET_INFO: return getInfo(vdev, arg);
        case IOCTLS.VFIO_DEVICE_GET_REGION_INFO: return getRegionInfo(vdev, arg);
        case IOCTLS.VFIO_DEVICE_GET_IRQ_INFO: return getIrqInfo(vdev, arg);
        case IOCTLS.VFIO_DEVICE_SET_IRQS: return yield* vfio_pci_ioctl_set_irqs(k, p, vdev, arg);
        case IOCTLS.VFIO_DEVICE_RESET: return yield* ioctlReset(k, vdev);
        case IOCTLS.VFIO_DEVICE_PCI_HOT_RESET: return yield* ioctlHotReset(k, p, vdev, arg);
        default: return -E.ENOTTY;
      }
    },
    *device_feature(k: Kernel, p: Process, flags: number, payload: Uint8Array, argsz: number): KGen<number> {
      switch (flags & VFIO_DEVICE_FEATURE_MASK) {
        case FEATURES.DMA_BUF: return yield* vfio_pci_core_feature_dma_buf(k, p, vdev, flags, payload, argsz);
        case FEATURES.DMA_BUF_REVOKE: return yield* vfio_pci_core_feature_dma_buf_revoke(k, p, vdev, flags, payload, argsz);
        case FEATURES.DMA_BUF_MEMATTR: return yield* vfio_pci_core_feature_dma_buf_memattr(k, p, vdev, flags, payload, argsz);
        case FEATURES.LOW_POWER_ENTRY: return yield* runtimePmEntry(vdev, flags, payload, argsz, null);
        case FEATURES.LOW_POWER_ENTRY_WITH_WAKEUP: return yield* runtimePmEntry(vdev, flags, payload, argsz, p);
        case FEATURES.LOW_POWER_EXIT: return yield* runtimePmExit(vdev, flags, argsz);
        default: return -E.ENOTTY;
      }
    },
    *mmap(k: Kernel, file: File, vma: Vma): KGen<number> {
      return yield* vfio_pci_core_mmap(k, vdev, vma);
    },
    *read(k: Kernel, buf: Uint8Array, off: number, user?: UserBuf): KGen<number> {
      const r = yield* vfio_pci_rw(k, vdev, buf, off, false);
      // vfio_pci_core_do_io_rw copies to the user outside memory_lock (bc93b9ae: no recursive read lock)
      if (r > 0 && user) {
        const c = yield* copy_to_user(k, user, buf.subarray(0, r));
        if (c < 0) return c;
      }
      return r;
    },
    *write(k: Kernel, buf: Uint8Array, off: number): KGen<number> {
      return yield* vfio_pci_rw(k, vdev, buf, off, true);
    },
    // vfio_pci_ops: .bind_iommufd = vfio_iommufd_physical_bind, .unbind_iommufd, .attach_ioas, .detach_ioas
    ...vfio_iommufd_physical_ops(vdev.vfio),
  };
}

function writeBack(arg: Uint8Array, layout: typeof vfio_device_info, v: Record<string, number>, argsz: number): void {
  encodeInto(layout, v, arg.subarray(0, Math.min(arg.length, argsz, layout.size)), 0);
}

/** VFIO_DEVICE_GET_INFO: minsz 16; flags PCI (+RESET); 9 regions, 5 IRQs; min(argsz, 24) written. */
function getInfo(vdev: VfioPciCoreDevice, arg: Uint8Array): number {
  const minsz = offsetofend(vfio_device_info, 'num_irqs');
  if (arg.length < minsz) return -E.EFAULT;
  const argsz = Number(decode(vfio_device_info, arg).argsz);
  if (argsz < minsz) return -E.EINVAL;
  const flags = VFIO_DEVICE_FLAGS_PCI | (vdev.reset_works ? VFIO_DEVICE_FLAGS_RESET : 0);
  writeBack(arg, vfio_device_info, { argsz, flags, num_regions: VFIO_PCI_NUM_REGIONS, num_irqs: VFIO_PCI_NUM_IRQS, cap_offset: 0, pad: 0 }, argsz);
  return 0;
}

/** VFIO_DEVICE_GET_REGION_INFO: the per-index table of vfio_pci_ioctl_get_region_info. */
function getRegionInfo(vdev: VfioPciCoreDevice, arg: Uint8Array): number {
  const minsz = vfio_region_info.size;
  if (arg.length < offsetofend(vfio_region_info, 'argsz')) return -E.EFAULT;
  const h = decode(vfio_region_info, arg);
  const argsz = Number(h.argsz);
  if (argsz < minsz || arg.length < minsz) return -E.EINVAL;
  const index = Number(h.index);
  const pdev = vdev.pdev;
  let size = 0, flags = 0, capBytes: Uint8Array | null = null;
  if (index === VFIO_PCI_CONFIG_REGION_INDEX) {
    size = pdev.cfgSize;
    flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
  } else if (index <= 5) {
    const b = pdev.bar(index);
    if (b && b.size) {
      size = b.size;
      flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
      if (vdev.bar_mmap_supported[index]) {
        flags |= VFIO_REGION_INFO_FLAG_MMAP;
        if (pdev.desc.msix?.bar === index) {
          capBytes = new Uint8Array(vfio_info_cap_header.size);
          encodeInto(vfio_info_cap_header, { id: VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, version: 1, next: 0 }, capBytes, 0);
        }
      }
    }
  } else if (index === VFIO_PCI_ROM_REGION_INDEX) {
    // no option ROM on the modelled devices: size 0, flags 0
  } else if (index === VFIO_PCI_VGA_REGION_INDEX) {
    return -E.EINVAL; // not a VGA device
  } else return -E.EINVAL; // no device-specific regions
  let outArgsz = argsz, capOffset = 0;
  if (capBytes) {
    flags |= VFIO_REGION_INFO_FLAG_CAPS;
    const need = minsz + capBytes.length;
    if (argsz < need) outArgsz = need; // the user must call again with a bigger buffer
    else {
      capOffset = minsz;
      if (arg.length >= need) arg.set(capBytes, minsz);
    }
  }
  encodeInto(vfio_region_info, { argsz: outArgsz, flags, index, cap_offset: capOffset, size: BigInt(size), offset: BigInt(VFIO_PCI_INDEX_TO_OFFSET(index)) }, arg, 0);
  return 0;
}

function getIrqInfo(vdev: VfioPciCoreDevice, arg: Uint8Array): number {
  const minsz = vfio_irq_info.size;
  if (arg.length < minsz) return -E.EFAULT;
  const h = decode(vfio_irq_info, arg);
  const index = Number(h.index);
  if (Number(h.argsz) < minsz || index >= VFIO_PCI_NUM_IRQS) return -E.EINVAL;
  if (index === VFIO_PCI_ERR_IRQ_INDEX && !vdev.pdev.desc.capabilities.pcie) return -E.EINVAL;
  const d = vdev.pdev.desc;
  const count = vfio_pci_get_irq_count(vdev, index);
  let flags = VFIO_IRQ_INFO_EVENTFD;
  if (index === VFIO_PCI_INTX_IRQ_INDEX) flags |= VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
  // MSI-X vectors can be added while enabled where the platform allocates them dynamically
  // (pci_msix_can_alloc_dyn: x86 since 6.5); everything else has a fixed count
  else if (index !== VFIO_PCI_MSIX_IRQ_INDEX || !d.msix) flags |= VFIO_IRQ_INFO_NORESIZE;
  encodeInto(vfio_irq_info, { flags, count }, arg, 0);
  return 0;
}

/**
 * VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY(_WITH_WAKEUP) → vfio_pci_runtime_pm_entry: revoke under
 * memory_lock(write), then mark runtime PM engaged (faults SIGBUS while it is). The function's own
 * trip to D3 that runtime PM would make later is not modelled; the model keeps it in D0.
 */
function* runtimePmEntry(vdev: VfioPciCoreDevice, flags: number, payload: Uint8Array, argsz: number, wakeup: Process | null): KGen<number> {
  const r = vfio_check_feature(flags, argsz, VFIO_DEVICE_FEATURE_SET, wakeup ? 8 : 0);
  if (r !== 1) return r;
  if (wakeup) {
    // vfio_pci_core_pm_entry_with_wakeup: a negative fd is -EINVAL, then eventfd_ctx_fdget's errnos
    if (payload.length < 8) return -E.EFAULT;
    const fd = new DataView(payload.buffer, payload.byteOffset, 8).getInt32(0, true);
    if (fd < 0) return -E.EINVAL;
    const ctx = yield* eventfd_ctx_fdget(vdev.k, wakeup, fd);
    if (typeof ctx === 'number') return ctx;
  }
  yield* vdev.lock_revoke_bars();
  let ret = 0;
  if (vdev.pm_runtime_engaged) ret = -E.EINVAL;
  else {
    vdev.pm_runtime_engaged = true;
    vdev.k.note(`${vdev.name}: runtime PM engaged (low-power entry)`);
  }
  yield* vdev.memory_lock.up_write();
  return ret;
}

/** VFIO_DEVICE_FEATURE_LOW_POWER_EXIT → vfio_pci_runtime_pm_exit: disengage, un-revoke if enabled. */
function* runtimePmExit(vdev: VfioPciCoreDevice, flags: number, argsz: number): KGen<number> {
  const r = vfio_check_feature(flags, argsz, VFIO_DEVICE_FEATURE_SET, 0);
  if (r !== 1) return r;
  yield* vdev.memory_lock.down_write();
  vdev.pm_runtime_engaged = false;
  yield* vdev.unrevokeIfEnabled();
  yield* vdev.memory_lock.up_write();
  return 0;
}

/**
 * VFIO_DEVICE_RESET. v4: memory_lock(write) → D0 → revoke → reset → un-revoke if enabled. Before
 * the series (and under M17) the revoke came before the move to D0.
 */
function* ioctlReset(k: Kernel, vdev: VfioPciCoreDevice): KGen<number> {
  if (!vdev.reset_works) return -E.EINVAL;
  if (k.variant.inodeZapFirst || k.mut('M17')) {
    yield* vdev.lock_revoke_bars();
    yield* vdev.pdev.setPower(R.PCI_D0);
  } else {
    yield* vdev.memory_lock.down_write();
    yield* vdev.pdev.setPower(R.PCI_D0);
    yield* vdev.revoke_bars();
  }
  // pci_try_reset_function: -EAGAIN while the device lock is held, returned to the user
  const ret = yield* vdev.pdev.tryResetFunction(vdev.resetMethod);
  yield* vdev.unrevokeIfEnabled();
  yield* vdev.memory_lock.up_write();
  return ret;
}

/**
 * Unbinding from vfio-pci (a write to the driver's sysfs unbind): device_release_driver holds the
 * device lock across the driver's remove, vfio_pci_remove, which unregisters the vfio device and
 * waits for every user to let go (vfio_unregister_group_dev), then drops its reference to the vfio
 * device (vfio_put_device), which frees it.
 */
export function* vfio_pci_unbind(k: Kernel, vdev: VfioPciCoreDevice): KGen {
  yield* vdev.pdev.device_lock.lock();
  yield* vfio_unregister_device(k, vdev.vfio);
  yield* vfio_put_device(k, vdev.vfio);
  yield* vdev.pdev.device_lock.unlock();
}

/**
 * VFIO_DEVICE_PCI_HOT_RESET with the device cdev (vfio_pci_ioctl_pci_hot_reset, count 0: ownership
 * through the caller's iommufd context). -EINVAL for a short argsz, flags or group fds; -ENODEV when
 * neither the slot nor the bus can be reset (a function on the root bus). Then
 * vfio_pci_dev_set_hot_reset under the device set's lock: every device of the set must be the
 * caller's (-EINVAL), and its memory_lock is only tried (-EBUSY, undoing what was taken: a REVOKE
 * draining its importers under memory_lock makes the reset fail rather than wait); each device is
 * revoked, open or not; all go to D0 and the bus is reset (pci_reset_bus: -EAGAIN, returned to the
 * user, when a function's device lock is taken, as by an unbind); in reverse order each is
 * un-revoked if it is open and its memory is enabled, and unlocked, whether the reset ran or not.
 */
function* ioctlHotReset(k: Kernel, p: Process, vdev: VfioPciCoreDevice, arg: Uint8Array): KGen<number> {
  if (arg.length < vfio_pci_hot_reset.size) return -E.EFAULT;
  const hdr = decode(vfio_pci_hot_reset, arg);
  if (Number(hdr.argsz) < vfio_pci_hot_reset.size || Number(hdr.flags) !== 0) return -E.EINVAL;
  if (Number(hdr.count) !== 0) return -E.EINVAL; // group fds are the group interface's, not the cdev's
  if (vdev.pdev.desc.bus !== 'bridge') return -E.ENODEV; // pci_probe_reset_slot and _bus fail
  const set = vdev.vfio.devSet;
  yield* set.lock.lock();
  const members = set.devices.map((d) => k.vfio.get(d.name)!);
  // vfio_dev_in_iommufd_ctx: the caller holds each device of the set open (bound to its context)
  yield ev('fdtable_lookup', p.files.key, 'r');
  const owns = (d: VfioPciCoreDevice) => [...p.files.fds.values()].some((e) => vfioDeviceOfFile(e.file) === d.vfio);
  const locked: VfioPciCoreDevice[] = [];
  let ret = 0;
  for (const d of members) {
    if (!owns(d)) {
      ret = -E.EINVAL;
      break;
    }
    if (!(yield* d.memory_lock.down_write_trylock())) {
      ret = -E.EBUSY;
      break;
    }
    locked.push(d);
    yield* d.revoke_bars();
  }
  if (ret === 0) {
    for (const d of members) yield* d.pdev.setPower(R.PCI_D0);
    ret = yield* pci_reset_bus(members.map((d) => d.pdev));
  }
  for (const d of locked.reverse()) {
    if (d.vfio.open_count > 0) yield* d.unrevokeIfEnabled();
    yield* d.memory_lock.up_write();
  }
  yield* set.lock.unlock();
  return ret;
}

/** vfio_pci_core_mmap: the checks in the kernel's order and errnos, then the DMABUF (series). */
function* vfio_pci_core_mmap(k: Kernel, vdev: VfioPciCoreDevice, vma: Vma): KGen<number> {
  const index = Math.floor(vma.vm_pgoff / PGOFF_INDEX_SHIFT);
  if (index >= VFIO_PCI_NUM_REGIONS) return -E.EINVAL;
  if (vma.vm_end < vma.vm_start) return -E.EINVAL;
  if (!vma.flags.shared && !k.mut('mmap-private-ok')) return -E.EINVAL;
  if (index >= VFIO_PCI_ROM_REGION_INDEX) return -E.EINVAL;
  if (!vdev.bar_mmap_supported[index]) return -E.EINVAL;
  const bar = vdev.pdev.bar(index)!;
  const physLen = Math.ceil(bar.size / PAGE_SIZE) * PAGE_SIZE;
  const reqLen = vma.vm_end - vma.vm_start;
  const reqStart = (vma.vm_pgoff % PGOFF_INDEX_SHIFT) * PAGE_SIZE;
  if (reqStart + reqLen > physLen) return -E.EINVAL;
  if (!vdev.barmapOk(index)) return -E.ENODEV;
  if (k.variant.barMmapViaDmabuf) {
    const r = yield* vfio_pci_core_mmap_prep_dmabuf(k, vdev, vma, bar.start, reqLen, index);
    if (r < 0) return r;
  } else vma.vm_private_data = vdev;
  vma.cache = 'UC';
  vma.flags.pfnmap = true;
  vma.vm_ops = k.vfioPciMmapOps;
  return 0;
}

/** vfio_pci_vmf_insert_pfn: memory_lock held for read; SIGBUS unless memory is enabled. */
function* vfio_pci_vmf_insert_pfn(k: Kernel, vdev: VfioPciCoreDevice, vmf: VmFaultCtx, pfn: number, order: number): KGen<VmFault> {
  if (!vdev.memory_lock.heldBy(k.sched.cur(), 'r') && !k.mut('M2')) k.violation('no-deadlock', 'vfio_pci_vmf_insert_pfn without memory_lock');
  if (vdev.pm_runtime_engaged || !vdev.memoryEnabled()) return VM_FAULT_SIGBUS;
  return yield* insertPfn(k, vmf, pfn, order);
}

function record(k: Kernel, vmf: VmFaultCtx, order: number, pfn: number | null, ret: VmFault): void {
  const size = PAGE_SIZE * 2 ** order;
  const va = vmf.address - (vmf.address % size);
  const outcome = faultName(ret) as 'NOPAGE' | 'FALLBACK' | 'SIGBUS';
  k.sched.cur().faults.push({ va, order, pgoff: (va - vmf.vma.vm_start) / PAGE_SIZE, pfn, outcome });
  k.note(`huge_fault order ${order} va 0x${va.toString(16)}: ${outcome}`);
}

/**
 * vfio_pci_mmap_huge_fault, v4 (patches 05+08+09): under the buffer's resv lock check the status and
 * pin the device registration; drop resv; under memory_lock(read) re-check the status, find the PFN
 * and insert. The registration keeps `vdev` valid against a racing cleanup.
 */
function* huge_fault_v4(k: Kernel, vmf: VmFaultCtx, order: number): KGen<VmFault> {
  const priv = vmf.vma.vm_private_data as VfioPciDmaBuf;
  let ret: VmFault = VM_FAULT_SIGBUS, pfn: number | null = null;
  if (k.mut('M2')) {
    // RFC v2: READ_ONCE(priv->vdev) with no lock or registration; find_pfn outside any lock
    yield ev('READ_ONCE(vdev)', priv.key, 'r');
    const vdev = priv.vdev;
    if (vdev) {
      const fp = findPfn(k, priv, vmf.vma, vmf.address, order);
      yield* vdev.memory_lock.down_read();
      k.checkAlive(vdev.vfio, `fault handler's use of ${vdev.name}`);
      if (priv.status === Status.OK) {
        if (fp.ret === 0) ret = yield* vfio_pci_vmf_insert_pfn(k, vdev, vmf, (pfn = fp.pfn), order);
        else if (findPfnFallsBack(fp.ret)) ret = VM_FAULT_FALLBACK;
      }
      yield* vdev.memory_lock.up_read();
    }
    record(k, vmf, order, pfn, ret);
    return ret;
  }
  // a read-only section: the status and the device pointer (the registration is its own event)
  yield* priv.dmabuf.resv.lock([{ obj: priv.key, acc: 'r' }]);
  if (priv.status !== Status.OK) {
    yield* priv.dmabuf.resv.unlock();
    record(k, vmf, order, null, ret);
    return ret;
  }
  const vdev = priv.vdev;
  if (!vdev) {
    k.violation('lifetime', `dmabuf${priv.dmabuf.id} is OK but has no device`);
    yield* priv.dmabuf.resv.unlock();
    return ret;
  }
  if (!(yield* vfio_device_try_get_registration(k, vdev.vfio))) {
    k.note(`${vdev.name}: fault on a buffer of an unregistering device`);
    yield* priv.dmabuf.resv.unlock();
    record(k, vmf, order, null, ret);
    return ret;
  }
  yield* priv.dmabuf.resv.unlock();
  yield* vdev.memory_lock.down_read();
  // v6 on: the status is re-checked under dmabuf_lock, which set_status holds for write (M22: not,
  // and v6's REVOKE, which holds memory_lock only for read, can zap between the check and the insert)
  const dmabufLock = k.variant.dmabufLock && !k.mut('M22');
  if (dmabufLock) yield* vdev.dmabuf_lock.down_read();
  // the re-check: a read of what set_status writes (under resv and, in v4, memory_lock for write;
  // from v6, dmabuf_lock for write)
  yield ev('READ(status)', priv.key, 'r');
  if (k.mut('M1') || priv.status === Status.OK) {
    const fp = findPfn(k, priv, vmf.vma, vmf.address, order);
    if (fp.ret === 0) ret = yield* vfio_pci_vmf_insert_pfn(k, vdev, vmf, (pfn = fp.pfn), order);
    else if (findPfnFallsBack(fp.ret)) ret = VM_FAULT_FALLBACK;
  }
  if (dmabufLock) yield* vdev.dmabuf_lock.up_read();
  yield* vdev.memory_lock.up_read();
  record(k, vmf, order, pfn, ret);
  yield* vfio_device_put_registration(k, vdev.vfio);
  return ret;
}

/**
 * vfio_pci_mmap_huge_fault before the series (v7.1): vm_private_data is the device, the PFN is the
 * BAR's plus the page index, and is_aligned_for_order() decides on FALLBACK.
 */
function* huge_fault_v71(k: Kernel, vmf: VmFaultCtx, order: number): KGen<VmFault> {
  const vma = vmf.vma, vdev = vma.vm_private_data as VfioPciCoreDevice;
  const size = PAGE_SIZE * 2 ** order;
  const addr = vmf.address - (vmf.address % size);
  const index = Math.floor(vma.vm_pgoff / PGOFF_INDEX_SHIFT);
  const pfn = vdev.pdev.bar(index)!.start / PAGE_SIZE + (vma.vm_pgoff % PGOFF_INDEX_SHIFT) + (addr - vma.vm_start) / PAGE_SIZE;
  let ret: VmFault = VM_FAULT_FALLBACK;
  const aligned = order === 0 || (addr >= vma.vm_start && addr + size <= vma.vm_end && pfn % 2 ** order === 0);
  if (aligned) {
    yield* vdev.memory_lock.down_read();
    ret = yield* vfio_pci_vmf_insert_pfn(k, vdev, vmf, pfn, order);
    yield* vdev.memory_lock.up_read();
  }
  record(k, vmf, order, aligned ? pfn : null, ret);
  return ret;
}

/** vfio_pci_mmap_ops: one set of vm_ops for BAR mmaps and DMABUF mmaps (vfio_pci_set_vma_ops). */
export function vfioPciMmapOps(k: Kernel): VmOps {
  return k.variant.barMmapViaDmabuf ? mmapOps(k, 'vfio_pci_mmap_ops', huge_fault_v4) : legacyMmapOps(k);
}
/** The pre-series handler, which variant drivers with their own mmap (nvgrace-gpu) keep using. */
export function legacyMmapOps(k: Kernel): VmOps {
  return mmapOps(k, 'vfio_pci_mmap_ops (vdev)', huge_fault_v71);
}
function mmapOps(k: Kernel, name: string, huge: (k: Kernel, vmf: VmFaultCtx, order: number) => KGen<VmFault>): VmOps {
  const ops: VmOps = {
    name,
    *fault(vmf) {
      return yield* huge(k, vmf, 0);
    },
    *huge_fault(vmf, order) {
      return yield* huge(k, vmf, order);
    },
  };
  if (!k.variant.barVmaKeepsDeviceFile) return ops;
  // v8: a BAR VMA keeps the device file and holds its buffer's file: one reference per VMA copy
  return {
    ...ops,
    *open(vma) {
      const priv = vma.vm_private_data;
      if (priv instanceof VfioPciDmaBuf && priv.vma_holds_dmabuf) yield* get_file(k, priv.dmabuf.file);
    },
    *close(vma) {
      const priv = vma.vm_private_data;
      if (priv instanceof VfioPciDmaBuf && priv.vma_holds_dmabuf) yield* fput(k, priv.dmabuf.file);
    },
  };
}

/**
 * vfio_pci_rw: pread/pwrite on the device fd. The config region goes to the config emulation; a BAR
 * is accessed under memory_lock(read) with -EIO while memory is disabled; the MSI-X table reads as
 * ones and drops writes; an access that runs past the BAR's end is cut short.
 */
function* vfio_pci_rw(k: Kernel, vdev: VfioPciCoreDevice, buf: Uint8Array, pos: number, write: boolean): KGen<number> {
  const index = Math.floor(pos / 2 ** VFIO_PCI_OFFSET_SHIFT);
  const off = pos % 2 ** VFIO_PCI_OFFSET_SHIFT;
  if (index === VFIO_PCI_CONFIG_REGION_INDEX) return yield* vfio_pci_config_rw(k, vdev, buf, off, write);
  if (index > 5) return -E.EINVAL;
  const bar = vdev.pdev.bar(index);
  if (!bar || !bar.size || bar.io) return -E.EINVAL;
  if (off >= bar.size) return -E.EINVAL;
  const count = Math.min(buf.length, bar.size - off);
  yield* vdev.memory_lock.down_read();
  let done = 0;
  if (!vdev.memoryEnabled()) done = -E.EIO;
  else {
    const msix = vdev.pdev.desc.msix;
    const mlo = msix?.bar === index ? msix.offset : Infinity, mhi = msix?.bar === index ? msix.offset + msix.entries * 16 : -1;
    const a = k.pci.accessEv(bar.start + off, count, write);
    yield ev(write ? 'iowrite' : 'ioread', '', 'r', a.also, a.spans);
    for (; done < count; done++) {
      const o = off + done;
      const masked = o >= mlo && o < mhi;
      if (masked) {
        if (!write) buf[done] = 0xff;
      } else if (write) k.pci.cpuAccess(bar.start + o, 1, true, BigInt(buf[done]), `pwrite ${vdev.name} BAR${index}`);
      else buf[done] = Number(k.pci.cpuAccess(bar.start + o, 1, false, 0n, `pread ${vdev.name} BAR${index}`));
    }
  }
  yield* vdev.memory_lock.up_read();
  return done;
}
