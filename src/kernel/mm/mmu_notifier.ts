// mm/mmu_notifier.c: secondary MMUs (KVM's second-stage table, an IOMMU's shared page table) learn
// of every change to a process's page tables through the notifiers registered on its mm. Every zap
// of a user range (zap_page_range_single under unmap_mapping_range and MADV_DONTNEED, unmap_vmas
// under munmap and exit, change_protection under mprotect, the split of a huge PFN leaf) calls
// mmu_notifier_invalidate_range_start before it clears the primary entries and
// mmu_notifier_invalidate_range_end after. The subscriber's code is reached only through its ops
// table (struct mmu_notifier_ops), as in Linux: mm does not know who listens.
import type { KGen } from '../sched/sched.ts';
import type { MmStruct } from './vma.ts';

/** enum mmu_notifier_event, as far as the model's zaps need it */
export type MmuNotifierEvent = 'MMU_NOTIFY_UNMAP' | 'MMU_NOTIFY_CLEAR' | 'MMU_NOTIFY_PROTECTION_VMA';

/** struct mmu_notifier_range */
export interface MmuNotifierRange {
  readonly mm: MmStruct;
  readonly start: number;
  readonly end: number;
  readonly event: MmuNotifierEvent;
}

/** struct mmu_notifier_ops: the callbacks the model's zaps run (invalidate_range_start/_end, release) */
export interface MmuNotifierOps {
  readonly name: string;
  invalidate_range_start(sub: MmuNotifier, range: MmuNotifierRange): KGen;
  invalidate_range_end?(sub: MmuNotifier, range: MmuNotifierRange): KGen;
}

/** struct mmu_notifier: one subscription of a secondary MMU to an mm */
export class MmuNotifier {
  constructor(
    readonly ops: MmuNotifierOps,
    /** the subscriber (container_of in Linux: the struct kvm that embeds it) */
    readonly owner: unknown,
  ) {}
}

/** mmu_notifier_register: subscribe to every invalidation of `mm`. */
export function mmu_notifier_register(sub: MmuNotifier, mm: MmStruct): void {
  mm.notifier_subscriptions.push(sub);
}

/** mmu_notifier_unregister: no further callbacks (kvm_destroy_vm). */
export function mmu_notifier_unregister(sub: MmuNotifier, mm: MmStruct): void {
  const i = mm.notifier_subscriptions.indexOf(sub);
  if (i >= 0) mm.notifier_subscriptions.splice(i, 1);
}

/**
 * mmu_notifier_invalidate_range_start: run every subscriber's invalidate_range_start over
 * [start, end) before the primary entries go. Returns the range for the matching _end, or null when
 * nobody listens (mm_has_notifiers false: no scheduling point at all).
 */
export function* mmu_notifier_invalidate_range_start(mm: MmStruct, start: number, end: number, event: MmuNotifierEvent): KGen<MmuNotifierRange | null> {
  if (!mm.notifier_subscriptions.length) return null;
  const range: MmuNotifierRange = { mm, start, end, event };
  for (const sub of [...mm.notifier_subscriptions]) yield* sub.ops.invalidate_range_start(sub, range);
  return range;
}

/** mmu_notifier_invalidate_range_end: the matching end, after the primary entries are gone. */
export function* mmu_notifier_invalidate_range_end(range: MmuNotifierRange | null): KGen {
  if (!range) return;
  for (const sub of [...range.mm.notifier_subscriptions]) if (sub.ops.invalidate_range_end) yield* sub.ops.invalidate_range_end(sub, range);
}
