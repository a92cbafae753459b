// virt/kvm/kvm_main.c: /dev/kvm, VMs and their memory slots, KVM as a secondary MMU of the VMM's mm.
//
// KVM_CREATE_VM makes a VM bound to the calling process's mm (kvm->mm) and subscribes it to that
// mm's MMU notifier (kvm_init_mmu_notifier); KVM_SET_USER_MEMORY_REGION maps guest-physical pages
// onto a range of the VMM's virtual memory. The second-stage table (EPT/NPT, kvm/mmu/tdp_mmu.ts) is
// filled on a guest fault from the host page table (hva_to_pfn) and emptied through the notifier
// whenever the host zaps that range (kvm_mmu_notifier_invalidate_range_start/_end). vCPUs are not
// modelled as fds: a guest access step stands for one KVM_RUN that makes the access (see
// docs/model-decisions.md).
import type { Kernel } from '../kernel.ts';
import type { Process } from '../process.ts';
import { ev, RwSem, traced, type KGen, type Task } from '../sched/sched.ts';
import { ptSpan, walkSpan, type Acc, type Span } from '../sched/events.ts';
import { AddressSpace, File, fput, type FileOps } from '../fs/file.ts';
import { PageTable } from '../mm/pgtable.ts';
import type { MmStruct } from '../mm/vma.ts';
import { handle_mm_fault } from '../mm/memory.ts';
import { VM_FAULT_SIGBUS } from '../mm/vma.ts';
import { MmuNotifier, mmu_notifier_register, mmu_notifier_unregister, type MmuNotifierOps, type MmuNotifierRange } from '../mm/mmu_notifier.ts';
import { kvm_tdp_mmu_unmap_gfn_range } from './mmu/tdp_mmu.ts';
import { E } from '../../uapi/errno.ts';
import { O_CLOEXEC, O_RDWR, PAGE_SIZE, TASK_SIZE } from '../../uapi/mman.ts';
import { decode } from '../../uapi/struct.ts';
import {
  KVM_API_VERSION, KVM_CREATE_VM, KVM_GET_API_VERSION, KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY, KVM_SET_USER_MEMORY_REGION,
  kvm_userspace_memory_region,
} from '../../uapi/kvm.ts';

/** x86: KVM_USER_MEM_SLOTS (KVM_MEM_SLOTS_NUM, SHRT_MAX, less the 3 internal slots) */
export const KVM_USER_MEM_SLOTS = 32764;
/** x86 with SMM: two address spaces of memslots (kvm_arch_nr_memslot_as_ids) */
const KVM_ADDRESS_SPACE_NUM = 2;
/** KVM_MEM_MAX_NR_PAGES: (1 << 31) - 1 */
const KVM_MEM_MAX_NR_PAGES = 2 ** 31 - 1;
/**
 * kvm_mmu_max_gfn: the host's MAXPHYADDR bounds guest-physical addresses under TDP. The model's host
 * reports 46 bits, as Skylake- and Cascade Lake-SP servers do.
 */
export const KVM_HOST_MAXPHYADDR = 46;
const KVM_MAX_GFN = 2 ** (KVM_HOST_MAXPHYADDR - 12) - 1;
const U64 = 2n ** 64n;

/** struct kvm_memory_slot, as far as the model needs it */
export interface KvmMemorySlot {
  /** the uAPI slot number: address space in the high 16 bits, id in the low 16 */
  readonly slot: number;
  readonly as_id: number;
  flags: number;
  base_gfn: number;
  readonly npages: number;
  readonly userspace_addr: number;
}

/** struct kvm: a VM */
export class Kvm {
  readonly memslots: KvmMemorySlot[] = [];
  /** the TDP root: guest-physical address -> host PFN, with real PUD/PMD/PTE levels */
  readonly ept = new PageTable();
  /** x86's mmu_lock (an rwlock: faults read, invalidations write) */
  readonly mmu_lock: RwSem;
  mmu_invalidate_seq = 0;
  mmu_invalidate_in_progress = 0;
  /** the gfn range of the invalidations in progress, [start, end); -1 when none */
  mmu_invalidate_range_start = -1;
  mmu_invalidate_range_end = -1;
  /** the notifier ranges whose start found a memslot, so their end closes them (kvm_handle_hva_range's found_memslot) */
  readonly invalidations = new Set<MmuNotifierRange>();
  /** vCPUs whose fault met an invalidation in progress over its gfn, until one ends */
  readonly invalidate_waiters: Task[] = [];
  readonly mmu_notifier: MmuNotifier;
  freed = false;
  file!: File;
  constructor(
    readonly k: Kernel,
    readonly id: number,
    readonly mm: MmStruct,
  ) {
    this.mmu_lock = new RwSem(k.sched, `kvm${id}.mmu_lock`, 'kvm.mmu_lock');
    this.mmu_notifier = new MmuNotifier(kvm_mmu_notifier_ops, this);
  }
  get name(): string {
    return `kvm${this.id}`;
  }
  /** scheduling span space of the second-stage table, by guest-physical address */
  get eptKey(): string {
    return `kvm${this.id}.ept`;
  }
  /** the memslot array (what SRCU readers see) */
  get slotsKey(): string {
    return `kvm${this.id}.memslots`;
  }
  /** mmu_invalidate_seq / _in_progress / the range: what a fault reads before its host lookup */
  get invKey(): string {
    return `kvm${this.id}.mmu_invalidate`;
  }
  eptSpan(lo: number, hi: number, acc: Acc): Span {
    return ptSpan(this.eptKey, lo, hi, acc);
  }
  /** A guest access's walk of the EPT at `gpa` (Span.walk). */
  eptWalk(gpa: number): Span {
    return walkSpan(this.eptKey, gpa);
  }
  /** gfn_to_memslot in the default address space */
  gfnToMemslot(gfn: number): KvmMemorySlot | null {
    return this.memslots.find((s) => s.as_id === 0 && gfn >= s.base_gfn && gfn < s.base_gfn + s.npages) ?? null;
  }
  /** The gfn ranges of the memslots over host virtual [start, end) (kvm_handle_hva_range's walk). */
  hvaToGfnRanges(start: number, end: number): Array<{ lo: number; hi: number }> {
    const out: Array<{ lo: number; hi: number }> = [];
    for (const s of this.memslots) {
      const a = Math.max(start, s.userspace_addr), b = Math.min(end, s.userspace_addr + s.npages * PAGE_SIZE);
      if (a >= b) continue;
      const lo = s.base_gfn + Math.floor((a - s.userspace_addr) / PAGE_SIZE);
      const hi = s.base_gfn + Math.ceil((b - s.userspace_addr) / PAGE_SIZE);
      out.push({ lo, hi });
    }
    return out;
  }
}

/**
 * The MMU notifier callbacks (kvm_mmu_notifier_invalidate_range_start / _end and
 * kvm_handle_hva_range): for every memslot the host range meets, under mmu_lock for write,
 * kvm_mmu_invalidate_begin and the unmap of the gfn range (kvm_unmap_gfn_range, on x86
 * kvm_tdp_mmu_unmap_gfn_range and a remote TLB flush); at the end kvm_mmu_invalidate_end bumps
 * mmu_invalidate_seq, so a fault that looked the host up before it retries.
 */
const kvm_mmu_notifier_ops: MmuNotifierOps = {
  name: 'kvm',
  *invalidate_range_start(sub, range) {
    const kvm = sub.owner as Kvm;
    yield ev('kvm_handle_hva_range', kvm.slotsKey, 'r');
    const gfns = kvm.hvaToGfnRanges(range.start, range.end);
    if (!gfns.length) return; // no memslot there: mmu_lock is not even taken
    kvm.invalidations.add(range);
    yield* kvm.mmu_lock.down_write();
    yield ev('kvm_mmu_invalidate_begin', kvm.invKey, 'w', undefined, gfns.map((g) => kvm.eptSpan(g.lo * PAGE_SIZE, g.hi * PAGE_SIZE, 'w')));
    if (kvm.mmu_invalidate_in_progress++ === 0) kvm.mmu_invalidate_range_start = kvm.mmu_invalidate_range_end = -1;
    let n = 0;
    for (const g of gfns) {
      // kvm_mmu_invalidate_range_add
      kvm.mmu_invalidate_range_start = kvm.mmu_invalidate_range_start < 0 ? g.lo : Math.min(kvm.mmu_invalidate_range_start, g.lo);
      kvm.mmu_invalidate_range_end = Math.max(kvm.mmu_invalidate_range_end, g.hi);
      n += kvm_tdp_mmu_unmap_gfn_range(kvm, g.lo, g.hi);
    }
    kvm.k.note(`mmu notifier (${range.event}) mm${range.mm.id} [0x${range.start.toString(16)}, 0x${range.end.toString(16)}): ${kvm.name} EPT unmap gfn ${gfns.map((g) => `[0x${g.lo.toString(16)}, 0x${g.hi.toString(16)})`).join(' ')}: ${n} entries`);
    yield* kvm.mmu_lock.up_write();
  },
  *invalidate_range_end(sub, range) {
    const kvm = sub.owner as Kvm;
    if (!kvm.invalidations.delete(range)) return;
    yield* kvm.mmu_lock.down_write();
    yield ev('kvm_mmu_invalidate_end', kvm.invKey, 'w');
    kvm.mmu_invalidate_seq++;
    kvm.mmu_invalidate_in_progress--;
    for (const t of kvm.invalidate_waiters.splice(0)) kvm.k.sched.wake(t);
    yield* kvm.mmu_lock.up_write();
  },
};

/**
 * A vCPU whose fault found an invalidation in progress over its gfn re-enters the guest and faults
 * again until the invalidation ends (RET_PF_RETRY); the model lets it sleep until an
 * invalidate_range_end instead of spinning, so an exploration that runs the vCPU alone is not a
 * livelock.
 */
export function* kvm_wait_invalidate(kvm: Kvm): KGen {
  yield ev('kvm_invalidate_wait', kvm.invKey, 'r');
  if (kvm.mmu_invalidate_in_progress === 0) return;
  kvm.invalidate_waiters.push(kvm.k.sched.cur());
  yield { op: 'kvm_invalidate_wait:woken', obj: kvm.invKey, acc: 'w', block: true };
}

/** The host side of a guest fault: the PFN at `hva`, or -EFAULT (KVM_PFN_ERR_FAULT). */
export interface HostPfn {
  pfn: number;
  /** the host leaf's order, which bounds the second-stage mapping level (host_pfn_mapping_level) */
  order: number;
  writable: boolean;
}

/**
 * hva_to_pfn under mmap_lock for read: vma_lookup, then for VM_IO | VM_PFNMAP hva_to_pfn_remapped
 * (follow_pfnmap_start; if nothing is mapped, fixup_user_fault, which runs the VMA's fault handler
 * through handle_mm_fault, and follow_pfnmap_start again), for other memory get_user_pages, which
 * the model resolves the same way (look the entry up, fault it in once, look again). A fault that
 * fails (the handler's SIGBUS: vm_fault_to_errno gives -EFAULT) or an entry still missing after it
 * is KVM_PFN_ERR_FAULT.
 */
export function* hva_to_pfn(k: Kernel, mm: MmStruct, hva: number, write: boolean): KGen<HostPfn | number> {
  yield* mm.mmap_lock.down_read();
  try {
    const vma = mm.find_vma(hva);
    if (!vma || (write ? !vma.flags.write : !vma.flags.read)) return -E.EFAULT;
    for (let tries = 0; ; tries++) {
      yield ev('follow_pfnmap', '', 'r', undefined, [mm.ptWalk(hva)]);
      const e = mm.pt.lookup(hva);
      if (e && (!write || e.write)) return { pfn: e.pfn + Math.floor((hva - e.va) / PAGE_SIZE), order: e.order, writable: e.write };
      if (tries > 0) return -E.EFAULT;
      // fixup_user_fault (mm/gup.c): handle_mm_fault with mmap_lock held
      const vmf = { vma, address: hva, write, vmaLock: false };
      const r = yield* traced(k.sched, 'handle_mm_fault', [vmf], handle_mm_fault(k, vmf));
      if (r & VM_FAULT_SIGBUS) return -E.EFAULT;
    }
  } finally {
    yield* mm.mmap_lock.up_read();
  }
}

/** kvm_dev_ioctl: the ioctls of /dev/kvm. */
const kvm_chardev_fops: FileOps = {
  kind: 'kvm',
  *ioctl(k, _file, cmd, arg) {
    switch (cmd) {
      case KVM_GET_API_VERSION:
        return KVM_API_VERSION;
      case KVM_CREATE_VM: {
        // the VM type is the ioctl's argument: the model passes none (0, the default VM)
        if (arg.length && arg.some((b) => b !== 0)) return -E.EINVAL;
        return yield* kvm_dev_ioctl_create_vm(k, k.currentProcess());
      }
    }
    // what the model does not have (KVM_CHECK_EXTENSION, KVM_GET_VCPU_MMAP_SIZE) says so in ops.ts
    return -E.ENOTTY;
  },
};

/** kvm_vm_fops */
const kvm_vm_fops: FileOps = {
  kind: 'kvm-vm',
  *ioctl(k, file, cmd, arg) {
    const kvm = file.private_data as Kvm;
    // kvm_vm_ioctl: only the process that created the VM may use it
    if (kvm.mm !== k.currentProcess().mm) return -E.EIO;
    if (cmd === KVM_SET_USER_MEMORY_REGION) {
      if (arg.length < kvm_userspace_memory_region.size) return -E.EFAULT;
      return yield* kvm_set_memory_region(k, kvm, decode(kvm_userspace_memory_region, arg));
    }
    return -E.ENOTTY; // kvm_arch_vm_ioctl's default; KVM_CREATE_VCPU is not modelled (ops.ts notes it)
  },
  /** kvm_vm_release -> kvm_destroy_vm: the notifier goes, and with it every second-stage entry */
  *release(k, file) {
    const kvm = file.private_data as Kvm;
    yield* kvm.mmu_lock.down_write();
    yield ev('kvm_destroy_vm', kvm.invKey, 'w', [{ obj: kvm.slotsKey, acc: 'w' }], [kvm.eptSpan(0, 2 ** 52, 'w')]);
    mmu_notifier_unregister(kvm.mmu_notifier, kvm.mm);
    kvm.ept.zapRange(0, 2 ** 52);
    kvm.memslots.length = 0;
    kvm.freed = true;
    k.kvms.delete(kvm);
    yield* kvm.mmu_lock.up_write();
  },
};

export function isKvmVmFile(f: File): boolean {
  return f.ops === kvm_vm_fops;
}

/** open("/dev/kvm"): the KVM character device. */
export function kvm_dev_open(k: Kernel, flags: number): File {
  return new File(k.nextId('file'), kvm_chardev_fops, new AddressSpace('kvm'), flags & ~O_CLOEXEC, null, '/dev/kvm');
}

/** kvm_dev_ioctl_create_vm: a VM of the caller's mm, its notifier registered, as an anon-inode fd. */
function* kvm_dev_ioctl_create_vm(k: Kernel, p: Process): KGen<number> {
  const kvm = new Kvm(k, k.nextId('kvm') + 1, p.mm);
  yield ev('mmu_notifier_register', p.mm.vmasKey, 'w');
  mmu_notifier_register(kvm.mmu_notifier, p.mm);
  kvm.file = new File(k.nextId('file'), kvm_vm_fops, new AddressSpace(`kvm${kvm.id}`), O_RDWR, kvm, 'anon_inode:kvm-vm');
  k.kvms.add(kvm);
  // anon_inode_getfd(..., O_RDWR | O_CLOEXEC)
  return yield* p.files.alloc(kvm.file, true);
}

/**
 * kvm_vm_ioctl_set_memory_region -> kvm_set_memory_region, with its checks in the kernel's order
 * (all -EINVAL but an overlap, -EEXIST), then kvm_arch_prepare_memory_region's gfn bound; a delete
 * or move flushes the old range from the second-stage table (kvm_arch_flush_shadow_memslot).
 */
export function* kvm_set_memory_region(k: Kernel, kvm: Kvm, mem: Record<string, number | bigint>): KGen<number> {
  const slot = Number(mem.slot), flags = Number(mem.flags);
  const gpa = BigInt(mem.guest_phys_addr), size = BigInt(mem.memory_size), uaddr = BigInt(mem.userspace_addr);
  const page = BigInt(PAGE_SIZE);
  if ((slot & 0xffff) >= KVM_USER_MEM_SLOTS) return -E.EINVAL;
  // check_memory_region_flags: x86 has dirty logging and read-only slots
  if (flags & ~(KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY)) return -E.EINVAL;
  const as_id = slot >>> 16;
  if (size % page) return -E.EINVAL;
  if (gpa % page) return -E.EINVAL;
  // access_ok(userspace_addr, memory_size): the range is user memory
  if (uaddr % page || uaddr + size > BigInt(TASK_SIZE)) return -E.EINVAL;
  if (as_id >= KVM_ADDRESS_SPACE_NUM) return -E.EINVAL;
  if (gpa + size >= U64) return -E.EINVAL;
  const npages = Number(size / page);
  if (npages > KVM_MEM_MAX_NR_PAGES) return -E.EINVAL;
  const base_gfn = Number(gpa / page);

  yield ev('kvm_set_memslot', kvm.slotsKey, 'r');
  const old = kvm.memslots.find((s) => s.slot === slot);
  if (npages === 0) {
    if (!old) return -E.EINVAL;
    yield* kvm_set_memslot(kvm, old.base_gfn, old.npages, () => kvm.memslots.splice(kvm.memslots.indexOf(old), 1));
    return 0;
  }
  let change: 'create' | 'move' | 'flags';
  if (!old) change = 'create';
  else {
    if (BigInt(old.userspace_addr) !== uaddr || old.npages !== npages || (flags ^ old.flags) & KVM_MEM_READONLY) return -E.EINVAL;
    if (old.base_gfn !== base_gfn) change = 'move';
    else if (old.flags !== flags) change = 'flags';
    else return 0;
  }
  if (change !== 'flags') {
    if (kvm.memslots.some((s) => s !== old && s.as_id === as_id && s.base_gfn < base_gfn + npages && base_gfn < s.base_gfn + s.npages)) return -E.EEXIST;
    // kvm_arch_prepare_memory_region (x86): the slot must lie below kvm_mmu_max_gfn()
    if (base_gfn + npages - 1 > KVM_MAX_GFN) return -E.EINVAL;
  }
  const sort = () => kvm.memslots.sort((a, b) => a.base_gfn - b.base_gfn);
  if (!old) {
    yield ev('kvm_swap_active_memslots', kvm.slotsKey, 'w');
    kvm.memslots.push({ slot, as_id, flags, base_gfn, npages, userspace_addr: Number(uaddr) });
    sort();
    k.note(`${kvm.name} memslot ${slot}: gpa 0x${gpa.toString(16)} +0x${size.toString(16)} -> hva 0x${uaddr.toString(16)}`);
    return 0;
  }
  const update = () => {
    old.flags = flags;
    old.base_gfn = base_gfn;
    sort();
  };
  if (change === 'move') yield* kvm_set_memslot(kvm, old.base_gfn, npages, update);
  else {
    yield ev('kvm_swap_active_memslots', kvm.slotsKey, 'w');
    update();
  }
  return 0;
}

/**
 * kvm_set_memslot for a delete or a move: the new memslots and the flush of the old gfns from the
 * second-stage table (kvm_arch_flush_shadow_memslot) in one step under mmu_lock, with
 * mmu_invalidate_seq bumped, so a fault that looked the old slot up retries. (Linux keeps such a
 * fault apart with SRCU: synchronize_srcu after the swap waits for it, and the slot is marked
 * KVM_MEMSLOT_INVALID meanwhile.)
 */
function* kvm_set_memslot(kvm: Kvm, base_gfn: number, npages: number, swap: () => void): KGen {
  yield* kvm.mmu_lock.down_write();
  yield ev('kvm_set_memslot', kvm.invKey, 'w', [{ obj: kvm.slotsKey, acc: 'w' }], [kvm.eptSpan(base_gfn * PAGE_SIZE, (base_gfn + npages) * PAGE_SIZE, 'w')]);
  swap();
  kvm.mmu_invalidate_seq++;
  const n = kvm_tdp_mmu_unmap_gfn_range(kvm, base_gfn, base_gfn + npages);
  kvm.k.note(`${kvm.name} flush memslot gfn [0x${base_gfn.toString(16)}, 0x${(base_gfn + npages).toString(16)}): ${n} entries`);
  yield* kvm.mmu_lock.up_write();
}

/**
 * The VM behind fd `fd` of `p`, for a guest access: -EBADF for no fd, -ENOTTY for a file that is not
 * a VM, -EIO for a VM of another process (kvm_vcpu_ioctl's kvm->mm check). The caller fputs `file`.
 */
export function* kvm_get_vm(k: Kernel, p: Process, fd: number): KGen<{ kvm: Kvm; file: File } | number> {
  const f = yield* p.files.fget(k, fd);
  if (typeof f === 'number') return f;
  const kvm = isKvmVmFile(f) ? (f.private_data as Kvm) : null;
  const err = !kvm ? -E.ENOTTY : kvm.mm !== p.mm ? -E.EIO : 0;
  if (err) {
    yield* fput(k, f);
    return err;
  }
  return { kvm: kvm!, file: f };
}
