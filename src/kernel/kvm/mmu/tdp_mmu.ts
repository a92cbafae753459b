// arch/x86/kvm/mmu/tdp_mmu.c: the second-stage (EPT/NPT) table of a VM, with 4 KiB, 2 MiB and
// 1 GiB leaves, as the host's PageTable keeps its own (indexed by guest-physical address).
import type { Kvm } from '../kvm_main.ts';
import { PAGE_SIZE, PMD_ORDER, PUD_ORDER } from '../../../uapi/mman.ts';

/** kvm_tdp_mmu_unmap_gfn_range: clear every leaf over gfns [start, end); a huge leaf goes whole. */
export function kvm_tdp_mmu_unmap_gfn_range(kvm: Kvm, start: number, end: number): number {
  return kvm.ept.zapRange(start * PAGE_SIZE, end * PAGE_SIZE);
}

/**
 * kvm_tdp_mmu_map: install a leaf of `order` (already reduced by kvm_mmu_hugepage_adjust) over
 * `gfn`, whose own PFN is `pfn`. A slot that already holds a table is not collapsed: the model falls
 * back to the next smaller level; a leaf another vCPU installed first is left alone. Returns the
 * order installed, or null if the gfn was mapped already.
 */
export function kvm_tdp_mmu_map(kvm: Kvm, gfn: number, pfn: number, order: number, writable: boolean): number | null {
  for (let o = order; o >= 0; o -= 9) {
    const off = gfn % 2 ** o;
    const leaf = { pfn: pfn - off, write: writable, cache: 'UC' as const };
    const gpa = (gfn - off) * PAGE_SIZE;
    const done = o === PUD_ORDER ? kvm.ept.insertPud(gpa, leaf) : o === PMD_ORDER ? kvm.ept.insertPmd(gpa, leaf) : kvm.ept.insertPte(gpa, leaf);
    if (done) return o;
    if (kvm.ept.lookup(gfn * PAGE_SIZE)) return null;
  }
  return null;
}
