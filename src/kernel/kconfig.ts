// The Kconfig symbols that change behaviour, with the series' select / def_bool / depends rules
// ([PATCH v4 02/10] PCI/P2PDMA: Add CONFIG_PCI_P2PDMA_CORE and v4 05/10, 2026-07-01) resolved the
// way Kconfig would.
export interface Kconfig {
  /** 64-bit build (PCI_P2PDMA depends on it; the series keeps "depends on 64BIT") */
  '64BIT': boolean;
  ZONE_DEVICE: boolean;
  PCI_P2PDMA: boolean;
  PCI_P2PDMA_CORE: boolean;
  DMA_SHARED_BUFFER: boolean;
  VFIO_PCI_CORE: boolean;
  VFIO_PCI_DMABUF: boolean;
  ARCH_SUPPORTS_PMD_PFNMAP: boolean;
  ARCH_SUPPORTS_PUD_PFNMAP: boolean;
  /** transparent_hugepage sysfs "enabled": huge PFN maps need "always" (or madvise + VM_HUGEPAGE) */
  thp: 'always' | 'madvise' | 'never';
}
export type KconfigInput = Partial<Record<keyof Kconfig, boolean | 'y' | 'n' | string>>;

export const USER_SYMBOLS = ['64BIT', 'ZONE_DEVICE', 'PCI_P2PDMA', 'PCI_P2PDMA_CORE', 'DMA_SHARED_BUFFER', 'VFIO_PCI_CORE', 'VFIO_PCI_DMABUF', 'ARCH_SUPPORTS_PMD_PFNMAP', 'ARCH_SUPPORTS_PUD_PFNMAP', 'thp'] as const;

export class KconfigError extends Error {}

const yn = (v: unknown, sym: string): boolean | undefined => {
  if (v === undefined) return undefined;
  if (v === true || v === 'y') return true;
  if (v === false || v === 'n') return false;
  throw new KconfigError(`config ${sym}: expected y or n, got ${JSON.stringify(v)}`);
};

/**
 * Resolve a partial configuration. Symbols the user sets are requests; derived symbols follow the
 * rules, and a request the rules cannot satisfy is an error naming the rule.
 */
export function resolveKconfig(input: KconfigInput = {}): Kconfig {
  for (const key of Object.keys(input)) if (!(USER_SYMBOLS as readonly string[]).includes(key)) throw new KconfigError(`config ${key}: unknown symbol (known: ${USER_SYMBOLS.join(', ')})`);
  const req = (s: keyof Kconfig) => yn(input[s], s);
  const bits64 = req('64BIT') ?? true;
  const zoneDevice = req('ZONE_DEVICE') ?? bits64;
  const vfioPciCore = req('VFIO_PCI_CORE') ?? true;
  if (!vfioPciCore) throw new KconfigError('config VFIO_PCI_CORE=n: vfio-sim models vfio-pci, which needs it');
  // PCI_P2PDMA: depends on 64BIT && ZONE_DEVICE (default y here: the distributions' choice)
  let p2p = req('PCI_P2PDMA');
  if (p2p && !bits64) throw new KconfigError('config PCI_P2PDMA=y: depends on 64BIT');
  if (p2p && !zoneDevice) throw new KconfigError('config PCI_P2PDMA=y: depends on ZONE_DEVICE');
  p2p ??= bits64 && zoneDevice;
  // PCI_P2PDMA_CORE: hidden, selected by PCI_P2PDMA and by VFIO_PCI_CORE
  const core = req('PCI_P2PDMA_CORE');
  if (core === false) throw new KconfigError('config PCI_P2PDMA_CORE=n: it is selected by VFIO_PCI_CORE (select forces it on)');
  // DMA_SHARED_BUFFER: selected by VFIO_PCI_CORE
  if (req('DMA_SHARED_BUFFER') === false) throw new KconfigError('config DMA_SHARED_BUFFER=n: it is selected by VFIO_PCI_CORE');
  // VFIO_PCI_DMABUF: def_bool y if PCI_P2PDMA, depends on VFIO_PCI_CORE
  const dmabuf = req('VFIO_PCI_DMABUF');
  if (dmabuf && !p2p) throw new KconfigError('config VFIO_PCI_DMABUF=y: it is "def_bool y if PCI_P2PDMA" and PCI_P2PDMA is n');
  if (dmabuf === false && p2p) throw new KconfigError('config VFIO_PCI_DMABUF=n: it is def_bool y whenever PCI_P2PDMA=y (not user-selectable)');
  const pmd = req('ARCH_SUPPORTS_PMD_PFNMAP') ?? bits64;
  const pud = req('ARCH_SUPPORTS_PUD_PFNMAP') ?? bits64;
  const thp = input.thp ?? 'always';
  if (thp !== 'always' && thp !== 'madvise' && thp !== 'never') throw new KconfigError(`config thp: expected always, madvise or never, got ${JSON.stringify(thp)}`);
  return {
    '64BIT': bits64, ZONE_DEVICE: zoneDevice, PCI_P2PDMA: p2p, PCI_P2PDMA_CORE: true, DMA_SHARED_BUFFER: true,
    VFIO_PCI_CORE: true, VFIO_PCI_DMABUF: p2p, ARCH_SUPPORTS_PMD_PFNMAP: pmd, ARCH_SUPPORTS_PUD_PFNMAP: pud, thp,
  };
}
