// Example device profiles, from real lspci listings in public issues (each profile's `source` names
// its own). A scenario device may say `profile: h100` and override any field.
import type { PciDevDesc } from './device.ts';

export interface Profile {
  id: string;
  title: string;
  source: string;
  desc: Omit<PciDevDesc, 'name'>;
}

const MiB = 2 ** 20, GiB = 2 ** 30, KiB = 1024;
const allCaps = { pm: true, pcie: true, flr: true };
/** SeaBIOS enables IO, MEMORY and SERR on every function (read through vfio on 6.12: COMMAND 0x0103) */
const SEABIOS_COMMAND = 0x0103;

export const PROFILES: Profile[] = [
  {
    id: 'h100',
    title: 'NVIDIA H100 (HGX): 16 MiB + 128 GiB + 32 MiB, all 64-bit prefetchable',
    source: 'lspci in fastfetch-cli/fastfetch#1658 (Region 0: 16M, Region 2: 128G, Region 4: 32M); the H20 in NVIDIA/nvtrust#128 has the same layout and MSI-X Count=9',
    desc: {
      bdf: '0000:3b:00.0', vendor: 0x10de, device: 0x2330, bus: 'bridge', capabilities: allCaps,
      bars: [
        { index: 0, size: 16 * MiB, prefetchable: true, bits: 64 },
        { index: 2, size: 128 * GiB, prefetchable: true, bits: 64 },
        { index: 4, size: 32 * MiB, prefetchable: true, bits: 64 },
      ],
      msix: { bar: 0, offset: 0xb90000, entries: 9 },
    },
  },
  {
    id: 'nvme',
    title: 'NVMe SSD (WD Green SN350): 16 KiB BAR0 with the MSI-X table at 0x2000, 256-byte BAR4',
    source: 'lspci in raspberrypi/linux#6190 (Region 0: 16K 64-bit non-pref; Region 4: 256 bytes; MSI-X Count=17, table in BAR0 at 0x2000, PBA in BAR4)',
    desc: {
      bdf: '0000:01:00.0', vendor: 0x15b7, device: 0x5019, bus: 'bridge', capabilities: allCaps,
      bars: [
        { index: 0, size: 16 * KiB, prefetchable: false, bits: 64 },
        { index: 4, size: 256, prefetchable: false, bits: 64 },
      ],
      msix: { bar: 0, offset: 0x2000, entries: 17 },
    },
  },
  {
    id: 'nic',
    title: 'Intel X722 10GbE: 16 MiB BAR0 and a 32 KiB BAR3 holding the MSI-X table',
    source: 'lspci in projectacrn/acrn-hypervisor#4443 (Region 0: 16M 64-bit pref; Region 3: 32K 64-bit pref; MSI-X Count=129, table in BAR3 at 0)',
    desc: {
      bdf: '0000:18:00.0', vendor: 0x8086, device: 0x37d2, bus: 'bridge', capabilities: allCaps,
      bars: [
        { index: 0, size: 16 * MiB, prefetchable: true, bits: 64 },
        { index: 3, size: 32 * KiB, prefetchable: true, bits: 64 },
      ],
      msix: { bar: 3, offset: 0, entries: 129 },
    },
  },
  {
    id: 'ivshmem',
    title: 'QEMU ivshmem-plain: 256-byte register BAR0 and a 2 GiB RAM BAR2 (64-bit prefetchable)',
    source: 'the device Linux 6.12 (Debian\'s kernel) was observed with in QEMU (REGION_INFO: BAR0 size 0x100, BAR2 size 0x80000000; scenarios/conform/ioctls-ivshmem.yaml)',
    desc: {
      bdf: '0000:01:00.0', vendor: 0x1af4, device: 0x1110, bus: 'bridge', capabilities: { pm: false, pcie: false, flr: false }, intPin: 0, command: SEABIOS_COMMAND,
      bars: [
        { index: 0, size: 256, prefetchable: false, bits: 32 },
        { index: 2, size: 2 * GiB, prefetchable: true, bits: 64 },
      ],
    },
  },
  {
    id: 'qemu-nvme',
    title: 'QEMU\'s NVMe controller: 16 KiB BAR0 holding the MSI-X table (65 vectors at 0x2000) and PBA (0x3000)',
    source: 'QEMU 7.2 hw/nvme (-device nvme), config space read in the conformance guest: MSI-X at 0x40 (table BAR0+0x2000, PBA BAR0+0x3000, 65 entries), PCIe at 0x80 (DEVCAP FLR), PM at 0x60; reset_method "flr bus"',
    desc: {
      bdf: '0000:02:00.0', vendor: 0x1b36, device: 0x0010, bus: 'bridge', capabilities: allCaps, command: SEABIOS_COMMAND,
      bars: [{ index: 0, size: 16 * KiB, prefetchable: false, bits: 64 }],
      msix: { bar: 0, offset: 0x2000, entries: 65 },
      capOffsets: [{ cap: 'msix', offset: 0x40 }, { cap: 'exp', offset: 0x80 }, { cap: 'pm', offset: 0x60 }],
    },
  },
  {
    id: 'edu',
    title: 'QEMU\'s edu device: one 1 MiB 32-bit register BAR0, one MSI vector, conventional PCI',
    source: 'QEMU 7.2 hw/misc/edu.c (-device edu), read in the conformance guest: BAR0 1 MiB non-prefetchable, an MSI capability at 0x40 and no PM or PCIe capability; reset_method "bus" behind a root port',
    desc: {
      bdf: '0000:03:00.0', vendor: 0x1234, device: 0x11e8, bus: 'bridge', capabilities: { pm: false, pcie: false, flr: false }, command: SEABIOS_COMMAND,
      msi: { vectors: 1 }, capOffsets: [{ cap: 'msi', offset: 0x40 }],
      bars: [{ index: 0, size: MiB, prefetchable: false, bits: 32 }],
    },
  },
];

/** Profiles read from device files (`--devices DIR`), beside the built-in ones. */
const USER_PROFILES: Profile[] = [];
export function addProfiles(list: Profile[]): void {
  for (const p of list) {
    const i = USER_PROFILES.findIndex((x) => x.id === p.id);
    if (i >= 0) USER_PROFILES[i] = p;
    else USER_PROFILES.push(p);
  }
}
/** The built-in profiles, then those from device files. */
export const allProfiles = (): Profile[] => [...PROFILES, ...USER_PROFILES];

export function profile(id: string): Profile | undefined {
  return PROFILES.find((p) => p.id === id) ?? USER_PROFILES.find((p) => p.id === id);
}
