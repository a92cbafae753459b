// Named design variants ("mutants"): each is a small switch in the kernel model that brings back a
// real bug from the series' review or from mainline history. The kernel code tests `k.mut(id)` at
// the place the bug lived. Each has a race scenario that it fails and the real design passes.
export interface Mutant {
  id: string;
  /** what the variant does differently */
  description: string;
  /** where the bug is documented */
  source: string;
  /** the invariant (or expectation) that catches it */
  breaks: string;
  /** the bundled scenario that shows it */
  scenario: string;
  /** the kernel the mutant is applied to (the version whose code it changes) */
  kernel: string;
}

/** Most mutants bring back a bug into the code of the series as v4 has it. */
const V4 = 'series-v4';

export const MUTANTS: Mutant[] = ([
  { id: 'M1', description: 'the fault handler skips the status re-check under memory_lock (checks only under the resv lock)', source: 'spec/series.md §4.2 step 6, §11.3 M1 (P4-08 design comment)', breaks: 'no-stale-pte', scenario: 'scenarios/races/fault-vs-perm-revoke.yaml' },
  { id: 'M2', description: 'the fault handler reads priv->vdev with READ_ONCE and takes neither the resv lock nor a registration (RFC v2)', source: 'spec/series.md §4.2 "Historical variant", §9.1 item 5 ([RFC v2 PATCH 05/10], 2026-03-12)', breaks: 'lifetime', scenario: 'scenarios/races/fault-vs-close-unbind.yaml' },
  { id: 'M3', description: 'a new DMABUF\'s initial status is computed before memory_lock is taken', source: 'spec/series.md §3.3 step 4, §9.1 item 3 (Alex Williamson, RFC v2, 2026-03-18)', breaks: 'decode-enabled', scenario: 'scenarios/races/export-vs-memory-disable.yaml' },
  { id: 'M4', description: 'before the kref fix: revokes do not re-arm the kref, and device close drains every buffer again (double kref_put)', source: 'spec/series.md §5.5 "Bug history" ([AFIX], 2026-05-07)', breaks: 'lifetime', scenario: 'scenarios/races/close-after-disable.yaml' },
  { id: 'M5', description: 'a revoke does not re-arm the kref and completion, so the next revoke underflows', source: 'spec/series.md §5.4 step 3 ([AFIX])', breaks: 'lifetime', scenario: 'scenarios/races/revoke-twice.yaml' },
  { id: 'M7', description: 'PERM_REVOKED is not absorbing: a later un-revoke (memory re-enabled) makes the buffer accessible again', source: 'spec/series.md §5.4 step 1, §11.2 I3 (P3-8)', breaks: 'expect (a permanently revoked mapping must SIGBUS)', scenario: 'scenarios/races/perm-revoke-vs-reenable.yaml' },
  { id: 'M9', description: 'find_pfn omits the VMA-bounds check for huge orders', source: 'spec/series.md §4.3 step 1, §9.4 item 24 (Pranjal Shrivastava, v3 7/9, 2026-06-12)', breaks: 'huge-aligned', scenario: 'scenarios/races/huge-fault-checks.yaml' },
  { id: 'M10', description: 'find_pfn omits the PFN alignment check', source: 'spec/series.md §4.3 step 4, §9.4 item 24', breaks: 'huge-aligned', scenario: 'scenarios/races/huge-fault-checks.yaml' },
  { id: 'M11', description: 'find_pfn accepts a huge page that starts in one range and ends in the next (straddle)', source: 'spec/series.md §4.3 Example C (P4-03 comment)', breaks: 'huge-aligned', scenario: 'scenarios/races/multirange-straddle.yaml' },
  { id: 'M12', description: 'find_pfn does not subtract vma_pgoff_adjust, so the BAR offset of a BAR mmap is applied twice', source: 'spec/series.md §9.2 item 7 (Jason Gunthorpe, v1 3/9, 2026-04-30)', breaks: 'pfn-in-buffer, or expect (the BAR offset applied twice maps the wrong page, or none)', scenario: 'scenarios/races/huge-fault-checks.yaml' },
  { id: 'M13', description: 'find_pfn refuses a VMA whose pgoff no longer equals the adjust, which a munmap split makes user-triggerable', source: 'spec/series.md §9.3 item 11 (Alex Williamson, v2 2/9, 2026-05-27)', breaks: 'expect (loads after a split must work)', scenario: 'scenarios/races/split-vs-fault.yaml' },
  { id: 'M15', description: 'zap_bars_on_revoke is opt-in (default false) for drivers that override .mmap, so a revoke leaves nvgrace-gpu\'s own mappings in place', source: 'spec/series.md §5.1, §9.3 item 13 (Alex Williamson, v2 6/9, 2026-05-28)', breaks: 'no-stale-pte', scenario: 'scenarios/races/nvgrace-usemem-vs-disable.yaml' },
  { id: 'M16', description: 'the PCIe FLR trigger resets the function without revoking first', source: 'spec/series.md §5.2 table, §11.3 M16 (P4-07 rationale)', breaks: 'decode-enabled', scenario: 'scenarios/races/load-vs-flr.yaml' },
  { id: 'M19', description: 'MEMATTR rejects an unknown attribute with -EINVAL instead of -ENOENT', source: 'spec/series.md §6.4 (v2→v3 history)', breaks: 'expect (uAPI errno)', scenario: 'scenarios/races/memattr-vs-revoke.yaml' },
  { id: 'M20', description: 'the REVOKE feature accepts a DMABUF of another device', source: 'spec/series.md §6.3 step 3 (P3-8)', breaks: 'expect (ENODEV for another device\'s buffer)', scenario: 'scenarios/races/revoke-other-device.yaml' },
  { id: 'M21', description: 'the DMABUF export takes memory_lock for write while mmap() holds mmap_lock (the v4/v5 locking), against v6\'s dmabuf_lock', source: 'spec/series.md §1.4, §9.6 item 30 ([LAB]: the v5 deadlock with nvgrace-gpu\'s read)', breaks: 'no-deadlock', scenario: 'scenarios/races/nvgrace-read-vs-mmap.yaml', kernel: 'series-v6' },
  { id: 'importer-map-no-kref', description: 'map_dma_buf does not take a kref, so a revoke does not wait for the importer to unmap', source: 'spec/mainline.md §3.3-3.4 ([dmabuf-2026]: map takes a kref; revoke waits for the completion), spec/series.md §5.4 step 3', breaks: 'iommu-revoked', scenario: 'scenarios/races/revoke-waits-for-importer-unmap.yaml' },
  { id: 'M22', description: 'v6\'s fault handler re-checks the status under memory_lock (read) only, not dmabuf_lock: the REVOKE feature, which from v6 holds memory_lock only for read, can set PERM and zap between the check and the insert', source: 'vfio_pci_mmap_huge_fault and vfio_pci_core_feature_dma_buf_revoke of the series v6 (GitHub opsound/linux 65ff31fe; docs/kernels.md)', breaks: 'no-stale-pte', scenario: 'scenarios/races/fault-vs-perm-revoke.yaml', kernel: 'series-v6' },
  { id: 'M23', description: 'the later set_status zaps only file offsets [0, size) of the DMABUF, as v4 did, so BAR >= 1 and offset BAR0 mappings survive a revoke', source: 'vfio_pci_dma_buf_set_status: unmap_mapping_range(..., 0, 0, ...) in the series v6 (GitHub opsound/linux 58c7c481, 65ff31fe; docs/kernels.md, docs/zap-range-finding.md)', breaks: 'no-stale-pte', scenario: 'scenarios/races/load-vs-reset-bar2.yaml', kernel: 'series-v6' },
  { id: 'M24', description: 'the later find_pfn (no mask) with v4\'s adjust (the in-BAR page offset): a BAR >= 1 mapping computes an offset past the buffer and SIGBUSes', source: 'vfio_pci_core_mmap_prep_dmabuf and vfio_pci_dma_buf_find_pfn of the series v6 (GitHub opsound/linux 3bb13a81, 65ff31fe; docs/kernels.md)', breaks: 'expect', scenario: 'scenarios/bar2-memory-disable.yaml', kernel: 'series-v6' },
  { id: 'iommufd-revoke-no-unmap', description: 'iommufd\'s revoke callback marks the pages revoked but leaves the IOVA translations in the domain', source: 'spec/mainline.md §6 (iopt_revoke_notify unmaps every area/domain pair)', breaks: 'iommu-revoked', scenario: 'scenarios/races/iommufd-map-vs-perm-revoke.yaml' },
  { id: 'iommufd-fill-ignores-revoke', description: 'filling a domain after MAP_FILE does not re-check for a revoke that came in between', source: 'spec/mainline.md §6 (iopt_area_fill_domain skips revoked pages)', breaks: 'iommu-revoked', scenario: 'scenarios/races/iommufd-map-vs-perm-revoke.yaml' },
  { id: 'mmap-private-ok', description: 'vfio_pci_core_mmap accepts a MAP_PRIVATE (not VM_SHARED) mapping of a BAR', source: 'spec/mainline.md §2.8 check 3; notes/linux-6.12-observed.md (MAP_PRIVATE of BAR2 -> EINVAL); vfio-sim conform flags it against a real kernel', breaks: 'expect (uAPI errno)', scenario: 'scenarios/conform/mmap-region-index-checks.yaml' },
  { id: 'no-revoke-on-disable', description: 'clearing COMMAND.MEMORY neither zaps nor revokes (before the CVE-2020-12888 fix)', source: 'spec/mainline.md §2.10 (abafbc551fdd "vfio-pci: Invalidate mmaps and block MMIO access on disabled memory")', breaks: 'no-stale-pte, then decode-enabled on the next access', scenario: 'scenarios/races/fault-vs-revoke.yaml' },
  { id: 'no-zap', description: 'dma_buf_move revokes buffers but does not zap their user PTEs (the zap the series adds)', source: 'spec/series.md §5.4 step 3 (P4-05: revocation zaps user PTEs via unmap_mapping_range)', breaks: 'no-stale-pte', scenario: 'scenarios/races/fault-vs-revoke.yaml' },
  { id: 'no-vfile', description: 'the BAR-mmap DMABUF does not take over the VMA\'s reference to the VFIO device file', source: 'spec/series.md §3.2 step 6 (P4-04), §11.2 I7', breaks: 'lifetime', scenario: 'scenarios/races/close-vs-fault.yaml' },
] as Array<Omit<Mutant, 'kernel'> & { kernel?: string }>).map((m) => ({ ...m, kernel: m.kernel ?? V4 }));

export const MUTANT_IDS = new Set(MUTANTS.map((m) => m.id));
export function findMutant(id: string): Mutant | undefined {
  return MUTANTS.find((m) => m.id.toLowerCase() === id.toLowerCase());
}
