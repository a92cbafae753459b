// The safety invariants of docs/invariants.md, checked over the whole machine state. Event-time checks
// (decode-enabled at the access, use-after-free at the use, kref underflow) are raised where they
// happen; this file checks what a state must satisfy between steps.
import type { Kernel } from './kernel.ts';
import type { Vma } from './mm/vma.ts';
import type { Entry } from './mm/pgtable.ts';
import { Status, STATUS_NAME, VfioPciDmaBuf, bufferPhys, vmaBufferOffset } from './vfio/pci/dmabuf.ts';
import { VfioPciCoreDevice } from './vfio/pci/core.ts';
import { IoptPages, type IommuDomain } from './iommufd/io_pagetable.ts';
import { containerDomains } from './vfio/container.ts';
import { ImporterAttachment, importerAttachments } from './dma-buf/importer.ts';
import type { Kvm, KvmMemorySlot } from './kvm/kvm_main.ts';
import { PAGE_SIZE } from '../uapi/mman.ts';

const hex = (n: number) => `0x${n.toString(16)}`;
const SIZE = [PAGE_SIZE, 2 * 1024 * 1024, 1024 * 1024 * 1024];
const sizeOf = (e: Entry) => SIZE[e.order / 9];

function vfioPrivs(k: Kernel): VfioPciDmaBuf[] {
  const out: VfioPciDmaBuf[] = [];
  for (const d of k.dmabufs) if (d.priv instanceof VfioPciDmaBuf) out.push(d.priv);
  return out;
}

/**
 * The VMAs that map a buffer: those on its file's i_mmap and those whose private data it is (from v8
 * a BAR VMA keeps the device file, and so lives on the device inode's i_mmap).
 */
function vmasOf(k: Kernel, priv: VfioPciDmaBuf): Set<Vma> {
  const out = new Set<Vma>(priv.dmabuf.file.f_mapping.i_mmap);
  for (const p of k.procs) for (const v of p.mm.vmas) if (v.vm_private_data === priv) out.add(v);
  return out;
}

/**
 * A second-stage (EPT) entry of a VM, with the host address its memslot gives it and the host VMA
 * there: KVM's entries must follow the host page table they were filled from (the MMU notifier's
 * contract), so every host invariant holds of them too.
 */
interface GuestEntry {
  kvm: Kvm;
  e: Entry;
  slot: KvmMemorySlot | null;
  hva: number;
  vma: Vma | null;
  /** how a violation names it */
  where: string;
}
function guestEntries(k: Kernel): GuestEntry[] {
  const out: GuestEntry[] = [];
  for (const kvm of k.kvms)
    for (const e of kvm.ept.entries()) {
      const gfn = e.va / PAGE_SIZE;
      const slot = kvm.gfnToMemslot(gfn);
      const hva = slot ? slot.userspace_addr + (gfn - slot.base_gfn) * PAGE_SIZE : -1;
      const vma = slot ? kvm.mm.find_vma(hva) : null;
      out.push({ kvm, e, slot, hva, vma, where: `${kvm.name} EPT gpa ${hex(e.va)} (hva ${hex(hva)}, order ${e.order})` });
    }
  return out;
}

/** The invariants the checker knows (what `expect_violations` may name). */
export const INVARIANTS = ['decode-enabled', 'no-stale-pte', 'pfn-in-buffer', 'huge-aligned', 'lifetime', 'no-leak', 'no-deadlock', 'iommu-revoked'] as const;

export function checkInvariants(k: Kernel): void {
  const privs = vfioPrivs(k);
  const guest = k.kvms.size ? guestEntries(k) : [];

  // no-stale-pte (a): a revoked buffer, once its revoke finished, has no entry in any of its VMAs.
  // A BAR VMA that keeps the device file (v8) is zapped through the device inode after the buffers'
  // move, under the same memory_lock: the revoke has finished when that lock is let go
  for (const priv of privs) {
    if (priv.status === Status.OK || priv.revoking) continue;
    if (priv.vma_holds_dmabuf && priv.vdev?.memory_lock.writer) continue;
    const vmas = vmasOf(k, priv);
    const revoked = `the revocation of ${priv.dmabuf.path()} (dmabuf${priv.dmabuf.id}, ${STATUS_NAME[priv.status]})`;
    for (const vma of vmas)
      for (const e of vma.mm.pt.entries(vma.vm_start, vma.vm_end))
        k.violation('no-stale-pte', `mm${vma.mm.id} va ${hex(e.va)} -> pfn ${hex(e.pfn)} (order ${e.order}) survives ${revoked}`);
    // and no VM's second-stage entry over those VMAs: the zap's MMU notifier removed them
    for (const g of guest) if (g.vma && vmas.has(g.vma)) k.violation('no-stale-pte', `${g.where} -> pfn ${hex(g.e.pfn)} survives ${revoked}`);
  }
  // no-stale-pte (a'): a second-stage entry maps what the host page table maps at its hva; an entry
  // the host no longer has is one the MMU notifier should have removed. Allowed while the host's
  // zap is between its notifier's start (which removed the guest entries) and its own clearing
  for (const g of guest) {
    if (!g.vma) continue;
    const h = g.kvm.mm.pt.lookup(g.hva);
    const hostPfn = h ? h.pfn + Math.floor((g.hva - h.va) / PAGE_SIZE) : null;
    if (hostPfn !== g.e.pfn) k.violation('no-stale-pte', `${g.where} -> pfn ${hex(g.e.pfn)} outlives the host's entry (the host maps ${hostPfn === null ? 'nothing' : `pfn ${hex(hostPfn)}`} there): no MMU notifier removed it`);
  }
  // no-stale-pte (b): with a device's memory disabled (or runtime-PM engaged) and no transition
  // under way, nothing maps its BARs
  for (const vdev of k.vfio.values()) {
    if ((vdev.memoryEnabled() && !vdev.pm_runtime_engaged) || vdev.memory_lock.writer) continue;
    for (const p of k.procs)
      for (const e of p.mm.pt.entries()) {
        const hit = k.pci.resolve(e.pfn * PAGE_SIZE);
        if (hit?.dev === vdev.pdev)
          k.violation('no-stale-pte', `mm${p.mm.id} va ${hex(e.va)} -> ${vdev.name} BAR${hit.bar.index} + ${hex(e.pfn * PAGE_SIZE - hit.bar.start)} (order ${e.order}) is still mapped while its memory is disabled`);
      }
    for (const g of guest) {
      const hit = k.pci.resolve(g.e.pfn * PAGE_SIZE);
      if (hit?.dev === vdev.pdev) k.violation('no-stale-pte', `${g.where} -> ${vdev.name} BAR${hit.bar.index} + ${hex(g.e.pfn * PAGE_SIZE - hit.bar.start)} is still mapped while its memory is disabled`);
    }
  }

  // decode-enabled, state half: with memory disabled and no transition under way, no buffer on the
  // device's list may be OK, or an importer could still reach the disabled BAR. A buffer whose file
  // is gone (its dentry held by an O_PATH open) is left alone by the walks, and reaches nothing: no
  // fd, mapping or attachment can hold it without holding its file
  for (const vdev of k.vfio.values()) {
    if (vdev.memoryEnabled() || vdev.memory_lock.writer) continue;
    for (const priv of vdev.dmabufs)
      if (priv.status === Status.OK && !priv.dmabuf.file.freed && !priv.dmabuf.fileAnnulled) k.violation('decode-enabled', `dmabuf${priv.dmabuf.id} (${priv.dmabuf.path()}) is OK while ${vdev.name}'s memory is disabled: importers and new faults may reach the disabled BAR`);
  }

  checkIommu(k, privs);

  for (const p of k.procs) {
    const vmas = p.mm.vmas;
    for (const e of p.mm.pt.entries()) {
      const size = sizeOf(e);
      const vma = vmas.find((v) => e.va >= v.vm_start && e.va < v.vm_end);
      if (!vma) {
        k.violation('pfn-in-buffer', `mm${p.mm.id} va ${hex(e.va)} -> pfn ${hex(e.pfn)} lies in no VMA`);
        continue;
      }
      // huge-aligned: VA and PFN aligned to the size, and the page inside the VMA
      if (e.order > 0) {
        if (e.pfn % 2 ** e.order !== 0) k.violation('huge-aligned', `mm${p.mm.id} order-${e.order} entry at ${hex(e.va)} maps unaligned pfn ${hex(e.pfn)}`);
        if (e.va + size > vma.vm_end) k.violation('huge-aligned', `mm${p.mm.id} order-${e.order} entry at ${hex(e.va)} runs past the VMA end ${hex(vma.vm_end)}`);
      }
      checkTranslation(k, vma, e, size);
    }
  }
  // the same of every second-stage entry, through its memslot's host address
  for (const g of guest) {
    const { e } = g, size = sizeOf(e);
    if (!g.slot) {
      k.violation('pfn-in-buffer', `${g.kvm.name} EPT gpa ${hex(e.va)} -> pfn ${hex(e.pfn)} lies in no memslot`);
      continue;
    }
    if (!g.vma) {
      k.violation('pfn-in-buffer', `${g.where} -> pfn ${hex(e.pfn)}: no VMA of ${g.kvm.name}'s process at that hva`);
      continue;
    }
    if (e.order > 0) {
      if (e.pfn % 2 ** e.order !== 0) k.violation('huge-aligned', `${g.where} maps unaligned pfn ${hex(e.pfn)}`);
      if (g.hva + size > g.vma.vm_end) k.violation('huge-aligned', `${g.where} runs past the VMA end ${hex(g.vma.vm_end)}`);
      if (g.hva % size !== 0) k.violation('huge-aligned', `${g.where}: the hva is not aligned to the entry's size`);
    }
    checkTranslation(k, g.vma, { ...e, va: g.hva }, size, g.where);
  }

  // lifetime: every buffer that names a device keeps it registered; a BAR-mmap buffer with VMAs has
  // not been cleaned up (its VMAs hold the device file open); a VMA's file is alive
  for (const priv of privs) {
    if (priv.vdev && !priv.released && (priv.vdev.vfio.freed || priv.vdev.vfio.refcount <= 0)) k.violation('lifetime', `dmabuf${priv.dmabuf.id} refers to ${priv.vdev.name}, which is no longer registered`);
    if (priv.kind === 'bar-mmap' && !priv.vdev && vmasOf(k, priv).size > 0)
      k.violation('lifetime', `${priv.dmabuf.path()} is mapped but its device was closed under it (cleanup ran while a BAR mmap exists)`);
  }
  for (const p of k.procs) for (const v of p.mm.vmas) if (v.vm_file?.freed) k.violation('lifetime', `mm${p.mm.id} VMA ${hex(v.vm_start)} uses freed file ${v.vm_file.path}`);

  for (const inv of k.sched.lockdep.inversions) k.violation('no-deadlock', inv);
}

/**
 * Every IOMMU domain the model has: those of live IOASes, those still reachable from an import, and
 * the type1 domains of the legacy containers (whose BAR mappings are raw PFNs nothing revokes).
 */
function domains(k: Kernel): Set<IommuDomain> {
  const out = containerDomains(k);
  for (const ctx of k.iommufds) for (const ioas of ctx.ioas()) out.add(ioas.domain);
  for (const d of k.dmabufs)
    for (const a of d.attachments) if (a.importer_priv instanceof IoptPages) for (const area of a.importer_priv.areas) out.add(area.ioas.domain);
  return out;
}

/**
 * iommu-revoked: once a buffer's revoke has finished (status not OK, no revoke in progress), no IOMMU
 * domain still translates an IOVA of an iommufd area over it (iopt_revoke_notify removed them), and
 * no importer still holds a mapping (sg_table) of it: set_status waited for every unmap.
 * decode-enabled, IOMMU half: with a device's memory disabled (or runtime-PM engaged) and no
 * transition under way, no IOMMU translation reaches its BARs, or a peer device's DMA could.
 */
function checkIommu(k: Kernel, privs: VfioPciDmaBuf[]): void {
  for (const priv of privs) {
    if (priv.status === Status.OK || priv.revoking) continue;
    for (const a of priv.dmabuf.attachments) {
      const pd = a.importer_priv;
      if (pd instanceof IoptPages)
        for (const area of pd.areas)
          for (const t of area.ioas.domain.overlapping(area.iova, area.length))
            k.violation('iommu-revoked', `${area.ioas.name} iova ${hex(t.iova)}+${hex(t.len)} -> pa ${hex(t.pa)} still maps ${priv.dmabuf.path()} (dmabuf${priv.dmabuf.id}, ${STATUS_NAME[priv.status]}) after its revocation`);
      if (pd instanceof ImporterAttachment && pd.mappings.length)
        k.violation('iommu-revoked', `importer${pd.id} still holds ${pd.mappings.length} mapping(s) of dmabuf${priv.dmabuf.id} (${STATUS_NAME[priv.status]}) after its revocation returned`);
    }
  }
  const doms = domains(k);
  if (!doms.size) return;
  const typeOne = containerDomains(k);
  for (const vdev of k.vfio.values()) {
    if ((vdev.memoryEnabled() && !vdev.pm_runtime_engaged) || vdev.memory_lock.writer) continue;
    for (const d of doms)
      for (const t of d.maps) {
        const hit = k.pci.resolve(t.pa);
        if (hit?.dev === vdev.pdev)
          k.violation('decode-enabled', `IOMMU domain ${d.key} iova ${hex(t.iova)} -> ${vdev.name} BAR${hit.bar.index} + ${hex(t.pa - hit.bar.start)} is still mapped while ${vdev.memoryEnabled() ? 'its runtime PM is engaged (it may be suspended to D3hot)' : 'its memory is disabled'}: a peer device's DMA could reach it${typeOne.has(d) ? ' (a type1 VFIO_IOMMU_MAP_DMA of a BAR mapping holds the raw PFN: no revoke reaches it)' : ''}`);
      }
  }
}

/**
 * pfn-in-buffer and the range half of huge-aligned: an entry maps exactly what the VMA's buffer
 * (or, before the series, its BAR) has at that offset, and a huge one stays inside one range.
 */
function checkTranslation(k: Kernel, vma: Vma, e: Entry, size: number, where = `mm${vma.mm.id} va ${hex(e.va)} (order ${e.order})`): void {
  const pd = vma.vm_private_data;
  if (pd instanceof VfioPciDmaBuf) {
    const off = vmaBufferOffset(pd, vma) + (e.va - vma.vm_start);
    const first = bufferPhys(pd, off), last = bufferPhys(pd, off + size - 1);
    if (!first) return k.violation('pfn-in-buffer', `${where} is at buffer offset ${hex(off)}, outside dmabuf${pd.dmabuf.id} (size ${hex(pd.size)})`);
    if (first.pa !== e.pfn * PAGE_SIZE) return k.violation('pfn-in-buffer', `${where} maps pfn ${hex(e.pfn)} but dmabuf${pd.dmabuf.id} offset ${hex(off)} is pfn ${hex(first.pa / PAGE_SIZE)}`);
    if (e.order > 0 && (!last || last.range !== first.range || last.pa !== first.pa + size - 1))
      k.violation('huge-aligned', `${where} spans more than one physically contiguous range of dmabuf${pd.dmabuf.id}`);
  } else if (pd instanceof VfioPciCoreDevice) {
    const index = Math.floor(vma.vm_pgoff / 2 ** 28);
    const bar = pd.pdev.bar(index);
    const expect = bar ? bar.start + ((vma.vm_pgoff % 2 ** 28) * PAGE_SIZE) + (e.va - vma.vm_start) : -1;
    if (expect !== e.pfn * PAGE_SIZE) k.violation('pfn-in-buffer', `${where} maps pfn ${hex(e.pfn)} but BAR${index} at that offset is pfn ${hex(expect / PAGE_SIZE)}`);
    if (bar && e.order > 0 && expect + size > bar.start + bar.size) k.violation('huge-aligned', `${where} runs past the end of BAR${index}`);
  }
}

/**
 * no-leak, at the end: once every fd is closed and every mapping removed, every file, buffer and
 * registration is gone (each device back to its own single registration).
 */
export function checkNoLeak(k: Kernel): void {
  const quiet = k.procs.every((p) => p.files.fds.size === 0 && p.mm.vmas.length === 0);
  if (!quiet) return;
  for (const d of k.dmabufs) k.violation('no-leak', `dmabuf${d.id} (${d.path()}) was never released (file count ${d.file.refs})`);
  for (const ctx of k.iommufds) k.violation('no-leak', `iommufd context ${ctx.id} was never released (file count ${ctx.file.refs})`);
  for (const c of k.vfioContainers) k.violation('no-leak', `${c.name} was never released (kref ${c.kref})`);
  for (const g of k.vfioGroups) if (g.opened_file) k.violation('no-leak', `group ${g.id} is still open (file count ${g.opened_file.refs})`);
  for (const ia of importerAttachments(k).values()) if (!ia.detached) k.violation('no-leak', `importer${ia.id} never detached from dmabuf${ia.dmabuf.id}`);
  for (const vdev of k.vfio.values()) {
    if (vdev.vfio.freed) continue;
    if (vdev.vfio.refcount !== 1) k.violation('no-leak', `${vdev.name} registration count is ${vdev.vfio.refcount}, not 1, with nothing open`);
    if (vdev.vfio.open_count !== 0) k.violation('no-leak', `${vdev.name} is still open (open_count ${vdev.vfio.open_count}) with no fd or mapping`);
    if (vdev.dmabufs.length) k.violation('no-leak', `${vdev.name} still lists ${vdev.dmabufs.length} DMABUF(s)`);
  }
}
