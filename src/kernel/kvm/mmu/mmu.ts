// arch/x86/kvm/mmu/mmu.c: a guest access and the second-stage fault (EPT violation / NPF) it takes
// when the table has no entry: kvm_tdp_page_fault -> kvm_mmu_faultin_pfn (hva_to_pfn of the
// memslot's host address) -> kvm_tdp_mmu_map under mmu_lock, unless an MMU-notifier invalidation
// ran meanwhile (is_page_fault_stale: the guest retries). A hit uses the cached PFN and never looks
// at the host page table again: only the MMU notifier can take it away.
import type { Kernel } from '../../kernel.ts';
import { announceTarget, ev, traced, type Ev, type KGen } from '../../sched/sched.ts';
import { hva_to_pfn, kvm_wait_invalidate, type Kvm } from '../kvm_main.ts';
import { kvm_tdp_mmu_map } from './tdp_mmu.ts';
import { E } from '../../../uapi/errno.ts';
import { KVM_MEM_READONLY } from '../../../uapi/kvm.ts';
import { PAGE_SIZE } from '../../../uapi/mman.ts';

/**
 * How one guest access ends, as the VMM sees it from KVM_RUN: the value (the guest went on); an exit
 * to user space with KVM_RUN returning 0 (KVM_EXIT_MMIO: no memslot, or a write to a read-only
 * slot, which the VMM emulates); or KVM_RUN failing with -EFAULT and exit_reason
 * KVM_EXIT_MEMORY_FAULT (kvm_handle_error_pfn: the host could not fault the page in, e.g. the
 * VFIO fault handler's SIGBUS with memory decode off).
 */
export type GuestAccessResult =
  | { ok: true; value: bigint }
  | { exit: 'KVM_EXIT_MMIO'; gpa: number; why: string }
  | { errno: number; exit: 'KVM_EXIT_MEMORY_FAULT'; gpa: number; why: string };

/** Faults of one access before the model calls it a livelock, as a user access does. */
const MAX_GUEST_FAULTS = 16;

/** The physical address a guest access at `gpa` reaches through the current EPT entry, or -1. */
function eptTarget(kvm: Kvm, gpa: number, write: boolean): number {
  const e = kvm.ept.lookup(gpa);
  return e && (!write || e.write) ? e.pfn * PAGE_SIZE + (gpa - e.va) : -1;
}
function guestEv(k: Kernel, kvm: Kvm, gpa: number, width: number, write: boolean, pa: number): Ev {
  const op = write ? 'guest_store' : 'guest_load';
  const walk = kvm.eptWalk(gpa);
  if (pa < 0) return ev(op, '', 'r', undefined, [walk]);
  const a = k.pci.accessEv(pa, width, write);
  return ev(op, '', 'r', a.also, [walk, ...a.spans]);
}

/** A vCPU's load or store of `width` bytes at guest-physical `gpa`. */
export function* kvm_guest_access(k: Kernel, kvm: Kvm, gpa: number, width: number, write: boolean, data: bigint): KGen<GuestAccessResult> {
  for (let tries = 0; tries < MAX_GUEST_FAULTS; tries++) {
    yield* announceTarget(() => eptTarget(kvm, gpa, write), (pa) => guestEv(k, kvm, gpa, width, write, pa));
    const pa = eptTarget(kvm, gpa, write);
    if (pa >= 0) {
      const value = k.pci.cpuAccess(pa, width, write, data, `guest ${write ? 'store to' : 'load from'} gpa 0x${gpa.toString(16)} (${kvm.name})`);
      return { ok: true, value };
    }
    const r = yield* traced(k.sched, 'kvm_tdp_page_fault', [gpa, write], kvm_tdp_page_fault(k, kvm, gpa, write));
    if (r !== 'retry') return r;
  }
  k.violation('no-deadlock', `guest access at gpa 0x${gpa.toString(16)} (${kvm.name}) kept faulting (${MAX_GUEST_FAULTS} retries): livelock`);
  return { errno: -E.EFAULT, exit: 'KVM_EXIT_MEMORY_FAULT', gpa, why: 'livelock' };
}

/**
 * kvm_tdp_page_fault: the memslot, mmu_invalidate_seq, the host PFN (hva_to_pfn, which may sleep
 * in the VFIO fault handler), then under mmu_lock (read, as the TDP MMU takes it) the staleness
 * check and the install. 'retry' re-enters the guest, which repeats the access.
 */
function* kvm_tdp_page_fault(k: Kernel, kvm: Kvm, gpa: number, write: boolean): KGen<GuestAccessResult | 'retry'> {
  const gfn = Math.floor(gpa / PAGE_SIZE);
  // mmu_invalidate_seq is read (smp_rmb) before the host lookup; the model reads it with the
  // memslots, which a delete or move changes together with it (kvm_main.ts, kvm_set_memslot)
  yield ev('gfn_to_memslot', kvm.invKey, 'r', [{ obj: kvm.slotsKey, acc: 'r' }]);
  const mmu_seq = kvm.mmu_invalidate_seq;
  const slot = kvm.gfnToMemslot(gfn);
  if (!slot) return { exit: 'KVM_EXIT_MMIO', gpa, why: 'no memslot (the VMM emulates the access)' };
  if (write && slot.flags & KVM_MEM_READONLY) return { exit: 'KVM_EXIT_MMIO', gpa, why: 'a write to a read-only memslot' };
  const hva = slot.userspace_addr + (gfn - slot.base_gfn) * PAGE_SIZE;
  const host = yield* hva_to_pfn(k, kvm.mm, hva, write);
  if (typeof host === 'number') return { errno: host, exit: 'KVM_EXIT_MEMORY_FAULT', gpa, why: `the host fault at hva 0x${hva.toString(16)} failed` };
  yield* kvm.mmu_lock.down_read();
  let wait = false;
  try {
    // is_page_fault_stale -> mmu_invalidate_retry_gfn: an invalidation in progress over the gfn,
    // or one finished since mmu_seq was read
    // (mutant kvm-no-invalidate-retry: neither, so a PFN the host zapped meanwhile is installed)
    const stale = !k.mut('kvm-no-invalidate-retry');
    wait = stale && kvm.mmu_invalidate_in_progress > 0 && gfn >= kvm.mmu_invalidate_range_start && gfn < kvm.mmu_invalidate_range_end;
    if (wait || (stale && kvm.mmu_invalidate_seq !== mmu_seq)) return 'retry';
    // kvm_mmu_hugepage_adjust: no bigger than the host leaf, and only where gfn and hva agree
    // modulo the size and the huge page lies inside the memslot
    let order = host.order;
    while (order > 0) {
      const n = 2 ** order, base = gfn - (gfn % n);
      if ((hva / PAGE_SIZE - gfn) % n === 0 && base >= slot.base_gfn && base + n <= slot.base_gfn + slot.npages) break;
      order -= 9;
    }
    const size = PAGE_SIZE * 2 ** order, lo = gpa - (gpa % size);
    yield ev('kvm_tdp_mmu_map', '', 'w', undefined, [kvm.eptSpan(lo, lo + size, 'w')]);
    const writable = host.writable && !(slot.flags & KVM_MEM_READONLY);
    const done = kvm_tdp_mmu_map(kvm, gfn, host.pfn, order, writable);
    if (done !== null) k.note(`${kvm.name} EPT install ${['4K', '2M', '1G'][done / 9]} gpa 0x${(gpa - (gpa % (PAGE_SIZE * 2 ** done))).toString(16)} -> pfn 0x${(host.pfn - (gfn % 2 ** done)).toString(16)}`);
    return 'retry';
  } finally {
    yield* kvm.mmu_lock.up_read();
    if (wait) yield* kvm_wait_invalidate(kvm);
  }
}
