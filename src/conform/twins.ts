// QEMU twins: the emulated PCI devices whose BAR layout matches a scenario device, so that the
// scenario can run on a real kernel in QEMU. A twin is decided by the device description itself
// (vendor, device, BARs), never by a profile's name, so a scenario that overrides a BAR size gets
// a twin of that size or none.
import type { PciDevDesc } from '../kernel/pci/device.ts';

export interface Twin {
  /** what QEMU emulates, e.g. "ivshmem-plain, 2 GiB BAR2" */
  title: string;
  /** twins with the same key are interchangeable (one QEMU device serves each in turn) */
  key: string;
  vendor: number;
  device: number;
  /** BAR index -> size the guest must see, checked before the scenario runs */
  bars: Record<number, number>;
  /** behind a PCIe root port (a secondary-bus reset), or on the root bus (no reset method for ivshmem) */
  bus: 'bridge' | 'root';
  /** QEMU options for the device on `bus` (a root port id, or "pcie.0,addr=…"); ids made unique by `n` */
  qemu(bus: string, n: number): string[];
}

const sameBars = (d: PciDevDesc, want: Array<[number, number, 32 | 64]>) =>
  d.bars.length === want.length && want.every(([i, size, bits]) => d.bars.some((b) => b.index === i && b.size === size && b.bits === bits && !b.io));

const human = (n: number) => (n >= 2 ** 30 ? `${n / 2 ** 30} GiB` : n >= 2 ** 20 ? `${n / 2 ** 20} MiB` : n >= 1024 ? `${n / 1024} KiB` : `${n} B`);

/**
 * The twin of a scenario device, or the reason it has none. Layouts as QEMU 7.2 builds them:
 * ivshmem-plain: BAR0 256 B of registers, BAR2 the memory backend (any power of two, 64-bit
 * prefetchable), no MSI-X; nvme: BAR0 16 KiB with the MSI-X table (64 vectors) and PBA; edu: BAR0
 * 1 MiB of registers, MSI only.
 */
export function twinOf(d: PciDevDesc): Twin | string {
  const t = twinOfDevice(d);
  return typeof t === 'string' ? t : { ...t, key: `${t.key}${d.bus === 'root' ? '@root' : ''}`, title: `${t.title}${d.bus === 'root' ? ', on the root bus' : ''}`, bus: d.bus };
}

function twinOfDevice(d: PciDevDesc): Omit<Twin, 'bus'> | string {
  const id = `${d.vendor.toString(16).padStart(4, '0')}:${d.device.toString(16).padStart(4, '0')}`;
  if (id === '1af4:1110') {
    const bar2 = d.bars.find((b) => b.index === 2)?.size ?? 0;
    if (!sameBars(d, [[0, 256, 32], [2, bar2, 64]]) || d.msix) return 'ivshmem-plain has exactly BAR0 (256 B, 32-bit) and BAR2 (64-bit), no MSI-X';
    if (bar2 < 4096) return 'ivshmem-plain needs a BAR2 of at least 4 KiB';
    return {
      title: `ivshmem-plain, ${human(bar2)} BAR2`, key: `ivshmem-${bar2}`, vendor: 0x1af4, device: 0x1110, bars: { 0: 256, 2: bar2 },
      qemu: (bus, n) => ['-object', `memory-backend-ram,id=shm${n},size=${bar2},share=on`, '-device', `ivshmem-plain,memdev=shm${n},bus=${bus}`],
    };
  }
  if (id === '1b36:0010') {
    if (!sameBars(d, [[0, 16384, 64]])) return 'QEMU\'s nvme has one BAR: BAR0, 16 KiB, 64-bit';
    return { title: 'nvme (QEMU NVMe controller)', key: 'nvme', vendor: 0x1b36, device: 0x0010, bars: { 0: 16384 }, qemu: (bus, n) => ['-device', `nvme,serial=vfiosim${n},bus=${bus}`] };
  }
  if (id === '1234:11e8') {
    if (!sameBars(d, [[0, 2 ** 20, 32]])) return 'QEMU\'s edu has one BAR: BAR0, 1 MiB, 32-bit';
    return { title: 'edu (QEMU educational device)', key: 'edu', vendor: 0x1234, device: 0x11e8, bars: { 0: 2 ** 20 }, qemu: (bus) => ['-device', `edu,bus=${bus}`] };
  }
  return `no QEMU device has vendor:device ${id}`;
}

export interface Slot {
  twin: Twin;
  /** the guest's PCI address of the device: root port i is bus i + 1 */
  bdf: string;
}

/**
 * The QEMU devices a set of scenarios needs: for each twin key, as many as the most any one
 * scenario uses at once; each behind its own PCIe root port (which gives it a secondary-bus reset,
 * as a real slot has, and an IOMMU group of its own).
 */
export function planSlots(scenarios: Array<{ name: string; twins: Twin[] }>): { slots: Slot[]; assign: Map<string, Slot[]>; qemu: string[] } {
  const need = new Map<string, { twin: Twin; count: number }>();
  for (const s of scenarios) {
    const per = new Map<string, number>();
    for (const t of s.twins) per.set(t.key, (per.get(t.key) ?? 0) + 1);
    for (const [key, c] of per) {
      const n = need.get(key);
      if (!n || n.count < c) need.set(key, { twin: s.twins.find((t) => t.key === key)!, count: c });
    }
  }
  const slots: Slot[] = [];
  const qemu: string[] = [];
  let ports = 0, onRoot = 0;
  for (const { twin, count } of [...need.values()].sort((a, b) => a.twin.key.localeCompare(b.twin.key)))
    for (let i = 0; i < count; i++) {
      const n = slots.length;
      if (twin.bus === 'root') {
        // on pcie.0 itself, at slot 0x10 and up (below the ICH9 functions at 0x1f)
        const dev = 0x10 + onRoot++;
        qemu.push(...twin.qemu(`pcie.0,addr=0x${dev.toString(16)}`, n));
        slots.push({ twin, bdf: `0000:00:${dev.toString(16)}.0` });
      } else {
        // root port i gets secondary bus i + 1 (the firmware numbers buses in slot order)
        const bus = `rp${ports++}`;
        qemu.push('-device', `pcie-root-port,id=${bus},chassis=${ports},slot=${ports}`, ...twin.qemu(bus, n));
        slots.push({ twin, bdf: `0000:${ports.toString(16).padStart(2, '0')}:00.0` });
      }
    }
  const assign = new Map<string, Slot[]>();
  for (const s of scenarios) {
    const used = new Set<Slot>();
    assign.set(s.name, s.twins.map((t) => {
      const slot = slots.find((x) => x.twin.key === t.key && !used.has(x))!;
      used.add(slot);
      return slot;
    }));
  }
  return { slots, assign, qemu };
}
