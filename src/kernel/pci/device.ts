// PCI functions: the hardware side. Config space with real register layout (header, PM, MSI-X and
// PCIe capabilities), naturally aligned BARs, power state, function reset, and device memory that
// costs nothing until touched. VFIO's virtualized view of config space lives in vfio/pci/config.ts.
import type { Kernel } from '../kernel.ts';
import { ev, Mutex, type Acc, type KGen, type Span } from '../sched/sched.ts';
import * as R from '../../uapi/pci_regs.ts';
import { PAGE_SIZE } from '../../uapi/mman.ts';
import { E } from '../../uapi/errno.ts';

export interface BarDesc {
  index: number;
  size: number;
  prefetchable: boolean;
  bits: 32 | 64;
  /** an I/O-port BAR (never mmap-able) */
  io?: boolean;
}
export interface MsixDesc {
  bar: number;
  offset: number;
  entries: number;
}
export interface PciCaps {
  pm: boolean;
  pcie: boolean;
  flr: boolean;
  /** an ATS extended capability (a reset then blocks ATS through the IOMMU group first) */
  ats?: boolean;
}
export interface PciDevDesc {
  name: string;
  bdf: string;
  vendor: number;
  device: number;
  bars: BarDesc[];
  msix?: MsixDesc;
  capabilities: PciCaps;
  /** "bridge": behind a port that can do a secondary-bus reset; "root": on the root bus */
  bus: 'bridge' | 'root';
  /** the vfio-pci driver bound: plain vfio-pci, or the nvgrace-gpu variant driver */
  driver?: 'vfio-pci' | 'nvgrace-gpu';
  /**
   * Where the capabilities sit in config space, in list order (a real device's layout, e.g. QEMU's
   * nvme: MSI-X 0x40 -> PCIe 0x80 -> PM 0x60). Left out: PM 0x40, MSI-X 0x50, PCIe 0x60.
   */
  capOffsets?: Array<{ cap: CapName; offset: number }>;
  /** an MSI capability with this many vectors (a power of two, 1..32) */
  msi?: { vectors: number };
  /** PCI_INTERRUPT_PIN: 1 (INTA) unless the function has no INTx pin (0) */
  intPin?: number;
  /** COMMAND as the firmware left it before vfio-pci enables the function (SeaBIOS: IO|MEMORY|SERR) */
  command?: number;
}
export type CapName = 'pm' | 'msi' | 'msix' | 'exp';

export interface Bar extends BarDesc {
  /** CPU physical address, naturally aligned to the size */
  start: number;
}

export const CAP_PM = 0x40, CAP_MSIX = 0x50, CAP_EXP = 0x60, CAP_MSI = 0x70;

/** The capabilities a device has, in list order, with their config-space offsets. */
export function capLayout(d: PciDevDesc): Array<{ cap: CapName; offset: number }> {
  const present = (c: CapName) => (c === 'pm' ? d.capabilities.pm : c === 'msi' ? !!d.msi : c === 'msix' ? !!d.msix : d.capabilities.pcie);
  const list = d.capOffsets ?? [{ cap: 'pm', offset: CAP_PM }, { cap: 'msi', offset: CAP_MSI }, { cap: 'msix', offset: CAP_MSIX }, { cap: 'exp', offset: CAP_EXP }];
  return list.filter((c) => present(c.cap));
}

/** Device memory: sparse 4 KiB pages keyed by PFN, allocated on first write. */
export class SparseMemory {
  readonly pages = new Map<number, Uint8Array>();
  read(pa: number, width: number): bigint {
    let v = 0n;
    for (let i = width - 1; i >= 0; i--) {
      const a = pa + i;
      const pg = this.pages.get(Math.floor(a / PAGE_SIZE));
      v = (v << 8n) | BigInt(pg ? pg[a % PAGE_SIZE] : 0);
    }
    return v;
  }
  write(pa: number, width: number, value: bigint): void {
    for (let i = 0; i < width; i++) {
      const a = pa + i, pfn = Math.floor(a / PAGE_SIZE);
      let pg = this.pages.get(pfn);
      if (!pg) this.pages.set(pfn, (pg = new Uint8Array(PAGE_SIZE)));
      pg[a % PAGE_SIZE] = Number((value >> BigInt(8 * i)) & 0xffn);
    }
  }
}

export class PciDev {
  readonly bars: Bar[] = [];
  /** the hardware config space */
  readonly cfg: Uint8Array;
  power = R.PCI_D0;
  inReset = false;
  readonly cfgSize: number;
  /** struct device's mutex (device_lock): held by the driver core across probe and remove (unbind) */
  readonly device_lock: Mutex;
  /** the mutex of the function's IOMMU group (each modelled function is its own group) */
  readonly iommu_group_mutex: Mutex;
  constructor(readonly desc: PciDevDesc, readonly bus: PciBus) {
    this.device_lock = new Mutex(bus.k.sched, `${desc.name}.device_lock`, 'device_lock');
    // device_initialize: lockdep_set_novalidate_class(&dev->mutex)
    this.device_lock.novalidate = true;
    this.iommu_group_mutex = new Mutex(bus.k.sched, `${desc.name}.iommu_group.mutex`, 'iommu_group.mutex');
    this.cfgSize = desc.capabilities.pcie ? R.PCI_CFG_SPACE_EXP_SIZE : R.PCI_CFG_SPACE_SIZE;
    this.cfg = new Uint8Array(this.cfgSize);
    this.buildConfig();
  }
  /** domain:bus of the function's address (0000:3b of 0000:3b:00.0) */
  get busId(): string {
    return this.desc.bdf.slice(0, this.desc.bdf.lastIndexOf(':'));
  }
  get name(): string {
    return this.desc.name;
  }

  private buildConfig(): void {
    const d = this.desc, c = new DataView(this.cfg.buffer);
    c.setUint16(R.PCI_VENDOR_ID, d.vendor, true);
    c.setUint16(R.PCI_DEVICE_ID, d.device, true);
    c.setUint16(R.PCI_SUBSYSTEM_VENDOR_ID, d.vendor, true);
    c.setUint16(R.PCI_SUBSYSTEM_ID, d.device, true);
    for (const b of this.bars) this.writeBarAddr(c, b);
    c.setUint8(R.PCI_INTERRUPT_PIN, d.intPin ?? 1);
    c.setUint16(R.PCI_COMMAND, d.command ?? 0, true);
    const fill: Record<CapName, (o: number) => void> = {
      pm: (o) => {
        c.setUint8(o, R.PCI_CAP_ID_PM);
        c.setUint16(o + 2, 0x0003, true); // PMC: version 3
        c.setUint16(o + R.PCI_PM_CTRL, R.PCI_PM_CTRL_NO_SOFT_RESET, true);
      },
      msi: (o) => {
        c.setUint8(o, R.PCI_CAP_ID_MSI);
        c.setUint16(o + R.PCI_MSI_FLAGS, (Math.log2(d.msi!.vectors) << 1) | R.PCI_MSI_FLAGS_64BIT, true);
      },
      msix: (o) => {
        c.setUint8(o, R.PCI_CAP_ID_MSIX);
        c.setUint16(o + R.PCI_MSIX_FLAGS, d.msix!.entries - 1, true);
        c.setUint32(o + R.PCI_MSIX_TABLE, d.msix!.offset | d.msix!.bar, true);
        const pba = d.msix!.offset + Math.ceil((d.msix!.entries * 16) / 8) * 8;
        c.setUint32(o + R.PCI_MSIX_PBA, pba | d.msix!.bar, true);
      },
      exp: (o) => {
        c.setUint8(o, R.PCI_CAP_ID_EXP);
        c.setUint16(o + 2, 0x0002, true); // version 2, endpoint
        c.setUint32(o + R.PCI_EXP_DEVCAP, d.capabilities.flr ? R.PCI_EXP_DEVCAP_FLR : 0, true);
      },
    };
    const caps = capLayout(d).map(({ cap, offset }): [number, (o: number) => void] => [offset, fill[cap]]);
    if (caps.length) {
      c.setUint16(R.PCI_STATUS, R.PCI_STATUS_CAP_LIST, true);
      c.setUint8(R.PCI_CAPABILITY_LIST, caps[0][0]);
      caps.forEach(([o, fill], i) => {
        fill(o);
        c.setUint8(o + 1, caps[i + 1]?.[0] ?? 0);
      });
    }
  }

  writeBarAddr(c: DataView, b: Bar): void {
    const off = R.PCI_BASE_ADDRESS_0 + 4 * b.index;
    const lo = (b.start % 2 ** 32) | (b.io ? R.PCI_BASE_ADDRESS_SPACE_IO : (b.bits === 64 ? R.PCI_BASE_ADDRESS_MEM_TYPE_64 : 0) | (b.prefetchable ? R.PCI_BASE_ADDRESS_MEM_PREFETCH : 0));
    c.setUint32(off, lo >>> 0, true);
    if (b.bits === 64) c.setUint32(off + 4, Math.floor(b.start / 2 ** 32), true);
  }

  /** Whether MMIO to the BARs is decoded: COMMAND.MEMORY set in hardware, in D0, not in reset. */
  decodes(): boolean {
    return !!(this.command() & R.PCI_COMMAND_MEMORY) && this.power === R.PCI_D0 && !this.inReset;
  }
  command(): number {
    return this.cfg[R.PCI_COMMAND] | (this.cfg[R.PCI_COMMAND + 1] << 8);
  }
  bar(index: number): Bar | undefined {
    return this.bars.find((b) => b.index === index);
  }
  /** Which BAR index an upper-half slot belongs to, if it is one (index 1 of a 64-bit BAR 0). */
  isUpperHalf(index: number): boolean {
    return this.bars.some((b) => b.bits === 64 && b.index + 1 === index);
  }
  capOffset(id: number): number {
    let p = this.cfg[R.PCI_CAPABILITY_LIST];
    while (p) {
      if (this.cfg[p] === id) return p;
      p = this.cfg[p + 1];
    }
    return 0;
  }

  /** Scheduling names: whether the function decodes its BARs, and its config space (by byte). */
  get decodeKey(): string {
    return `${this.name}.decode`;
  }
  cfgSpan(offset: number, width: number, acc: Acc): Span {
    return { space: `${this.name}.cfg`, lo: offset, hi: offset + width, acc };
  }

  /**
   * A hardware config write (pci_write_config_*): the step writes those config bytes, and the
   * function's decode state when they include COMMAND.
   */
  *hwConfigWrite(offset: number, width: number, value: number): KGen {
    const command = offset < R.PCI_COMMAND + 2 && offset + width > R.PCI_COMMAND;
    yield ev('pci_write_config', command ? this.decodeKey : '', 'w', undefined, [this.cfgSpan(offset, width, 'w')]);
    this.hwConfigWriteNow(offset, width, value);
  }
  hwConfigWriteNow(offset: number, width: number, value: number): void {
    for (let i = 0; i < width; i++) this.cfg[offset + i] = (value >>> (8 * i)) & 0xff;
  }
  hwConfigRead(offset: number, width: number): number {
    let v = 0;
    for (let i = width - 1; i >= 0; i--) v = v * 256 + this.cfg[offset + i];
    return v;
  }

  supportsPowerState(state: number): boolean {
    if (state !== R.PCI_D1 && state !== R.PCI_D2) return true;
    const pm = this.capOffset(R.PCI_CAP_ID_PM);
    const pmc = pm ? this.cfg[pm + R.PCI_PM_PMC] | (this.cfg[pm + R.PCI_PM_PMC + 1] << 8) : 0;
    return !!(pmc & (state === R.PCI_D1 ? R.PCI_PM_CAP_D1 : R.PCI_PM_CAP_D2));
  }

  /**
   * pci_set_power_state: D1 and D2 only where the PM capability's PMC advertises them (otherwise
   * -EIO and the function stays where it is, as pci_set_low_power_state refuses).
   */
  *setPower(state: number): KGen<number> {
    yield ev('pci_set_power_state', this.decodeKey, 'w', undefined, [this.cfgSpan(this.capOffset(R.PCI_CAP_ID_PM) + R.PCI_PM_CTRL, 2, 'w')]);
    if (!this.supportsPowerState(state)) return -E.EIO;
    this.power = state;
    const pm = this.capOffset(R.PCI_CAP_ID_PM);
    if (pm) this.cfg[pm + R.PCI_PM_CTRL] = (this.cfg[pm + R.PCI_PM_CTRL] & ~R.PCI_PM_CTRL_STATE_MASK) | state;
    return 0;
  }

  /**
   * pci_try_reset_function (drivers/pci/pci.c): -ENOTTY without a reset method, -EAGAIN when the
   * device lock is taken (pci_dev_trylock: an unbind in progress holds it), else the reset.
   */
  *tryResetFunction(method: string | null): KGen<number> {
    if (!method) return -E.ENOTTY;
    if (!(yield* this.device_lock.trylock())) return -E.EAGAIN;
    yield* this.resetFunction(method);
    yield* this.device_lock.unlock();
    return 0;
  }

  /**
   * The reset itself (__pci_reset_function_locked, or a bus reset), device lock held or not
   * needed: save config, reset (decode off while in reset), restore config. With ATS it is bracketed
   * by pci_dev_reset_iommu_prepare/done (drivers/iommu/iommu.c, c279e83953d9, by v7.0), which take the IOMMU
   * group's mutex to block ATS. Device memory keeps its contents: the model's BARs are plain memory,
   * as an ivshmem RAM backend is; a real device may clear or scramble its memory on FLR, which
   * software must not rely on either way.
   */
  *resetFunction(method: string): KGen {
    if (this.desc.capabilities.ats) yield* this.iommuResetBracket('prepare');
    yield ev('pci_reset_enter', this.decodeKey, 'w', undefined, [this.cfgSpan(0, this.cfgSize, 'w')]);
    const saved = this.cfg.slice(0, 64);
    this.inReset = true;
    this.power = R.PCI_D0;
    this.hwConfigWriteNow(R.PCI_COMMAND, 2, 0);
    this.bus.k.note(`${this.name}: ${method} reset`);
    yield ev('pci_reset_exit', this.decodeKey, 'w', undefined, [this.cfgSpan(0, this.cfgSize, 'w')]);
    this.inReset = false;
    this.cfg.set(saved, 0);
    if (this.desc.capabilities.ats) yield* this.iommuResetBracket('done');
  }
  /** pci_dev_reset_iommu_prepare / _done: each under the group's mutex (attach to or from the blocking domain). */
  private *iommuResetBracket(what: 'prepare' | 'done'): KGen {
    yield* this.iommu_group_mutex.lock();
    this.bus.k.note(`${this.name}: pci_dev_reset_iommu_${what} (ATS ${what === 'prepare' ? 'blocked' : 'restored'})`);
    yield* this.iommu_group_mutex.unlock();
  }
}

/**
 * pci_reset_bus for the functions behind one bridge (drivers/pci/pci.c, __pci_reset_bus):
 * pci_bus_trylock tries every function's device lock in turn and, at the first it cannot take
 * (an unbind in progress holds it), lets go of those it took, in reverse, and fails with -EAGAIN;
 * otherwise each function is saved, reset by the bridge's secondary bus reset and restored, and
 * unlocked. The bridge's own lock (taken first by newer kernels) is not modelled: the model has no
 * bridge device.
 */
export function* pci_reset_bus(devs: PciDev[]): KGen<number> {
  const locked: PciDev[] = [];
  for (const d of devs) {
    if (!(yield* d.device_lock.trylock())) {
      for (const l of locked.reverse()) yield* l.device_lock.unlock();
      return -E.EAGAIN;
    }
    locked.push(d);
  }
  for (const d of devs) yield* d.resetFunction('secondary bus');
  for (const d of locked.reverse()) yield* d.device_lock.unlock();
  return 0;
}

/** The host's physical address space for BARs and the memory behind them. */
export class PciBus {
  readonly devs: PciDev[] = [];
  readonly mem = new SparseMemory();
  private next64 = 0x200_0000_0000; // 2 TiB: the 64-bit MMIO window
  /** RAM for anonymous pages, from 4 GiB up (below the MMIO window) */
  static readonly RAM_BASE = 0x1_0000_0000;
  private nextRamPfn = PciBus.RAM_BASE / PAGE_SIZE;
  private next32 = 0xc000_0000;
  constructor(readonly k: Kernel) {}

  add(desc: PciDevDesc): PciDev {
    const dev = new PciDev(desc, this);
    // Natural alignment, largest first, as firmware assigns them (a 128 GiB BAR is 128 GiB-aligned).
    for (const b of [...desc.bars].sort((a, b) => b.size - a.size)) {
      const window = b.bits === 64 ? 'next64' : 'next32';
      const align = Math.max(b.size, PAGE_SIZE);
      const start = Math.ceil(this[window] / align) * align;
      this[window] = start + align;
      dev.bars.push({ ...b, start });
    }
    dev.bars.sort((a, b) => a.index - b.index);
    const c = new DataView(dev.cfg.buffer);
    for (const b of dev.bars) dev.writeBarAddr(c, b);
    this.devs.push(dev);
    return dev;
  }

  allocRamPage(): number {
    return this.nextRamPfn++;
  }
  isRam(pa: number): boolean {
    return pa >= PciBus.RAM_BASE && pa < this.nextRamPfn * PAGE_SIZE;
  }

  resolve(pa: number): { dev: PciDev; bar: Bar } | null {
    for (const dev of this.devs) for (const bar of dev.bars) if (pa >= bar.start && pa < bar.start + bar.size) return { dev, bar };
    return null;
  }

  /**
   * What an access to [pa, pa + len) touches, for its scheduling event: that physical memory and,
   * for a BAR, the function's decode state, which decides whether the access is claimed.
   */
  accessEv(pa: number, len: number, write: boolean): { also: Array<{ obj: string; acc: Acc }>; spans: Span[] } {
    const hit = this.resolve(pa);
    return { also: hit ? [{ obj: hit.dev.decodeKey, acc: 'r' }] : [], spans: [{ space: 'pmem', lo: pa, hi: pa + Math.max(1, len), acc: write ? 'w' : 'r' }] };
  }

  /**
   * A CPU (or peer DMA) access to physical address `pa`. With decode off the function does not
   * claim the cycle: reads see all ones, writes are lost, and the `decode-enabled` invariant breaks
   * (on some platforms such an access is a fatal error: CVE-2020-12888).
   */
  cpuAccess(pa: number, width: number, write: boolean, value: bigint, what: string): bigint {
    if (this.isRam(pa)) {
      if (write) this.mem.write(pa, width, value);
      return write ? value : this.mem.read(pa, width);
    }
    const hit = this.resolve(pa);
    if (!hit) {
      // the rest of a sub-page BAR's page is reserved ("vfio sub-page reserved"): nothing answers
      const page = pa - (pa % PAGE_SIZE);
      if (!this.resolve(page) && !this.devs.some((d) => d.bars.some((b) => b.start >= page && b.start < page + PAGE_SIZE)))
        this.k.violation('pfn-in-buffer', `${what}: physical 0x${pa.toString(16)} is in no BAR`);
      return write ? 0n : (1n << BigInt(8 * width)) - 1n;
    }
    if (!hit.dev.decodes()) {
      const why = hit.dev.inReset ? 'in reset' : hit.dev.power !== R.PCI_D0 ? `in D${hit.dev.power === 3 ? '3hot' : hit.dev.power}` : 'COMMAND.MEMORY is clear';
      this.k.violation('decode-enabled', `${what} reached ${hit.dev.name} BAR${hit.bar.index} + 0x${(pa - hit.bar.start).toString(16)} while ${why}`);
      return write ? 0n : (1n << BigInt(8 * width)) - 1n;
    }
    if (write) {
      this.mem.write(pa, width, value);
      return value;
    }
    return this.mem.read(pa, width);
  }
}
