// The scenario file format (docs/scenario-format.md) as zod schemas. Steps are one-key maps; each operation has
// its own argument schema. Numbers may be names bound by `as:` (checked when the step runs).
import { z } from 'zod';
import { isErrnoName } from '../uapi/errno.ts';
import { ValueError, parseExpr } from './values.ts';

/** A number, a size, a name or a sum of them, kept as written and parsed into an Expr. */
export const num = z.union([z.bigint(), z.number(), z.string()]).superRefine((v, ctx) => {
  try {
    parseExpr(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as ValueError).message });
  }
});
/** A name `as:` binds, which expressions read: no '-', which would read as a minus (`dev-2`). */
const name = z.string().regex(/^[A-Za-z_]\w*$/, 'a name: letters, digits and _ (a - would read as minus)');
/** An event's name (post/wait), never read by an expression. */
const eventName = z.string().regex(/^[A-Za-z_][\w-]*$/, 'an event name: letters, digits, _ and -');
/** An access width in bytes: what a CPU load/store or a config access can be. */
const width = (ws: readonly number[]) =>
  z.union([z.number(), z.bigint()]).refine((v) => ws.includes(Number(v)), `a width of ${ws.join(', ')} bytes`);
const MEM_WIDTH = [1, 2, 4, 8], CFG_WIDTH = [1, 2, 4];
const flagList = <T extends readonly [string, ...string[]]>(values: T) => z.array(z.enum(values));

/** The flag names an ioctl step's `flags` list may use (ops.ts gives each its uAPI value). */
export const IOCTL_FLAG_NAMES = [
  'get', 'set', 'probe', 'data_none', 'data_bool', 'data_eventfd', 'action_mask', 'action_unmask', 'action_trigger', 'readable', 'writeable', 'fixed_iova', 'pasid',
  'read', 'write', 'vaddr', 'all', 'get_dirty_bitmap',
] as const;
/** VFIO_CHECK_EXTENSION / VFIO_SET_IOMMU arguments by name (<linux/vfio.h>) */
export const EXTENSION_NAMES = [
  'VFIO_TYPE1_IOMMU', 'VFIO_SPAPR_TCE_IOMMU', 'VFIO_TYPE1v2_IOMMU', 'VFIO_DMA_CC_IOMMU', 'VFIO_EEH', 'VFIO_TYPE1_NESTING_IOMMU',
  'VFIO_SPAPR_TCE_v2_IOMMU', 'VFIO_NOIOMMU_IOMMU', 'VFIO_UNMAP_ALL', 'VFIO_UPDATE_VADDR',
] as const;

export const REGS = ['VENDOR_ID', 'DEVICE_ID', 'COMMAND', 'STATUS', 'BAR0', 'BAR1', 'BAR2', 'BAR3', 'BAR4', 'BAR5', 'PM_CTRL', 'DEVCTL'] as const;

const expect = z
  .object({
    ok: z.literal(true).optional(),
    errno: z.string().refine(isErrnoName, 'an errno name such as EINVAL').optional(),
    signal: z.enum(['SIGBUS', 'SIGSEGV']).optional(),
    value: num.optional(),
    order: z.union([z.literal(0), z.literal(9), z.literal(18), z.literal(0n), z.literal(9n), z.literal(18n)]).optional(),
    /** `maps`: some line of /proc/PID/maps matches this glob (`*`, `|`) */
    line: z.string().min(1).optional(),
  })
  .strict()
  .refine((e) => [e.ok, e.errno, e.signal].filter((x) => x !== undefined).length <= 1, 'at most one of ok, errno, signal');

const common = { as: name.optional(), expect: expect.optional() };
/** a yes/no argument, carried as 1/0 so that every argument value stays a number or a name */
const boolFlag = z.boolean().transform((b) => (b ? 1 : 0));
const fdOrDevice = { fd: num.optional(), device: z.string().optional() };
/** dma_read/dma_write: through an IOAS (`ioas`, `iommufd`: an implicit peer device) or as a bound device (`device`) */
const dmaTarget = (a: { iommufd?: unknown; ioas?: unknown; device?: unknown }) => (a.device !== undefined) !== (a.iommufd !== undefined || a.ioas !== undefined);
const DMA_TARGET = 'give ioas (an IOAS id) or iommufd (an iommufd fd with one IOAS) for a peer device, or device (a device bound to an iommufd, through the IOAS it is attached to)';

export const OPS = {
  /**
   * open(2) of a device node (`path`), of /proc/self/fd/N (`proc_fd: <fd>`), or of
   * /proc/self/map_files/<start>-<end> for the mapping at an address (`map_files: <addr>`). Device
   * nodes: /dev/vfio/devices/vfioN is the device cdev as Linux names it (N in the order devices are
   * listed; unusable until VFIO_DEVICE_BIND_IOMMUFD), /dev/vfio/devices/<name> the device opened and
   * usable at once (the model's stand-in for the group path), /dev/iommu a new iommufd context,
   * /dev/vfio/vfio a new legacy container, /dev/vfio/N the IOMMU group of the scenario's device N
   * (from 0, each device its own group; one open at a time), /dev/kvm the KVM device
   */
  open: z
    .object({ path: z.string().optional(), proc_fd: num.optional(), map_files: num.optional(), flags: flagList(['rdonly', 'wronly', 'rdwr', 'cloexec', 'nonblock', 'path']).optional(), ...common })
    .strict()
    .refine((a) => [a.path, a.proc_fd, a.map_files].filter((x) => x !== undefined).length === 1, { message: 'give exactly one of path, proc_fd and map_files' }),
  /** close(2); the last reference to a file releases it (a device file's last close runs close_device) */
  close: z.object({ fd: num, ...common }).strict(),
  /** dup(2); the value is the new fd, which shares the file */
  dup: z.object({ fd: num, ...common }).strict(),
  /** eventfd2(initval, flags): the value is the fd */
  eventfd: z.object({ initval: num.optional(), flags: flagList(['cloexec', 'nonblock', 'semaphore']).optional(), ...common }).strict(),
  /**
   * ioctl(2) with the real binary structs: `op` names the ioctl (VFIO_DEVICE_GET_INFO, _GET_REGION_INFO,
   * _GET_IRQ_INFO, _SET_IRQS, _RESET, _PCI_HOT_RESET, _FEATURE, _BIND_IOMMUFD, _ATTACH_IOMMUFD_PT,
   * _DETACH_IOMMUFD_PT on a device fd; VFIO_GET_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU,
   * VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA on a container fd (/dev/vfio/vfio);
   * VFIO_GROUP_GET_STATUS, _SET_CONTAINER, _UNSET_CONTAINER, _GET_DEVICE_FD on a group fd
   * (/dev/vfio/N); IOMMU_IOAS_ALLOC, IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FILE,
   * IOMMU_IOAS_UNMAP, IOMMU_DESTROY on an iommufd fd; KVM_GET_API_VERSION, KVM_CREATE_VM on /dev/kvm;
   * KVM_SET_USER_MEMORY_REGION on a VM fd) or gives its number; the fields below, named
   * as the uAPI struct's, fill the struct (`argsz` or, for iommufd, `size` overrides the size it
   * would have; MAP_FILE's own fd is `dmabuf_fd`, as `fd` is the file the ioctl goes to). Results
   * the kernel writes back are fields of the bound name (`r0.offset` of a REGION_INFO, `b.out_devid`
   * of a BIND, `a.out_ioas_id` of an IOAS_ALLOC). An ioctl Linux has and the model does not answers
   * ENOTTY with "not modelled" in the step's detail
   */
  ioctl: z
    .object({
      fd: num,
      op: z.union([z.string(), num]),
      argsz: num.optional(),
      index: num.optional(),
      /** a list of the ioctl's flag names (FEATURE: get, set, probe; SET_IRQS: data_*, action_*; IOAS_MAP(_FILE): readable, writeable, fixed_iova; ATTACH/DETACH_IOMMUFD_PT: pasid; VFIO_IOMMU_MAP_DMA: read, write (the default), vaddr; VFIO_IOMMU_UNMAP_DMA: all, get_dirty_bitmap, vaddr) or a number */
      flags: z.union([flagList(IOCTL_FLAG_NAMES), num]).optional(),
      feature: z.union([z.string(), num]).optional(),
      region_index: num.optional(),
      open_flags: z.union([flagList(['rdonly', 'wronly', 'rdwr', 'cloexec', 'nonblock']), num]).optional(),
      dma_buf_flags: num.optional(),
      nr_ranges: num.optional(),
      ranges: z.array(z.object({ offset: num, length: num }).strict()).optional(),
      dmabuf_fd: num.optional(),
      /** VFIO_DEVICE_PCI_HOT_RESET: its flags and group-fd count (0 with the device cdev) */
      hot_reset_flags: num.optional(),
      count: num.optional(),
      /** LOW_POWER_ENTRY_WITH_WAKEUP: the eventfd to signal on wake-up */
      wakeup_eventfd: num.optional(),
      memattr: z.union([z.enum(['NC', 'WC']), num]).optional(),
      /** VFIO_DEVICE_BIND_IOMMUFD: the iommufd fd */
      iommufd: num.optional(),
      /** VFIO_DEVICE_ATTACH_IOMMUFD_PT: the IOAS (or page table) id; pasid with flag pasid */
      pt_id: num.optional(),
      pasid: num.optional(),
      /** VFIO_DEVICE_SET_IRQS: first vector (count defaults to the length of data); IOMMU_IOAS_MAP_FILE: offset in the buffer */
      start: num.optional(),
      /** VFIO_DEVICE_SET_IRQS: one eventfd (data_eventfd) or 0/1 (data_bool) per vector */
      data: z.array(num).optional(),
      /** iommufd ioctls: the struct's size (default: its sizeof); VFIO_IOMMU_MAP_DMA / UNMAP_DMA: the mapping's size (a field of their struct) */
      size: num.optional(),
      /** IOMMU_IOAS_MAP, _MAP_FILE, _UNMAP (the struct's fd of MAP_FILE is dmabuf_fd) */
      ioas_id: num.optional(),
      user_va: num.optional(),
      length: num.optional(),
      iova: num.optional(),
      __reserved: num.optional(),
      /** IOMMU_DESTROY: the object id */
      id: num.optional(),
      /** KVM_SET_USER_MEMORY_REGION (on a VM fd): struct kvm_userspace_memory_region; its flags are `flags` as a number (KVM_MEM_LOG_DIRTY_PAGES 1, KVM_MEM_READONLY 2) */
      slot: num.optional(),
      guest_phys_addr: num.optional(),
      memory_size: num.optional(),
      userspace_addr: num.optional(),
      /** VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU: the argument itself (an extension or IOMMU type, by name or number) */
      arg: z.union([z.enum(EXTENSION_NAMES), num]).optional(),
      /** VFIO_GROUP_SET_CONTAINER: the container's fd (the int the argument points to) */
      container: num.optional(),
      /** VFIO_GROUP_GET_DEVICE_FD: the device's name, its PCI address (0000:01:00.0) */
      name: z.string().optional(),
      /** VFIO_IOMMU_MAP_DMA: the user address to map (with iova and size, which UNMAP_DMA also takes) */
      vaddr: num.optional(),
      ...common,
    })
    .strict(),
  /**
   * mmap(2) of an fd (a device fd at a region offset, a DMABUF fd at a buffer offset); the value is
   * the address. prot defaults to [read, write], flags to [shared]
   */
  mmap: z
    .object({
      /** the file to map; left out with flags [anonymous] (a user buffer) */
      fd: num.optional(),
      offset: num.optional(),
      length: num,
      prot: flagList(['read', 'write', 'exec', 'none']).optional(),
      flags: flagList(['shared', 'private', 'fixed', 'fixed_noreplace', 'shared_validate', 'anonymous']).optional(),
      addr: num.optional(),
      ...common,
    })
    .strict(),
  /** munmap(2) of [addr + offset, + length) */
  munmap: z.object({ addr: num, offset: num.optional(), length: num, ...common }).strict(),
  /** mprotect(2): new protections for the range; the page-table entries are changed to match */
  mprotect: z.object({ addr: num, offset: num.optional(), length: num, prot: flagList(['read', 'write', 'exec', 'none']), ...common }).strict(),
  /** MADV_DONTNEED: refused (EINVAL) on BAR mappings, which are VM_PFNMAP */
  madvise: z.object({ addr: num, offset: num.optional(), length: num, advice: z.enum(['dontneed']), ...common }).strict(),
  /** resize in place; the value is the (unchanged) address */
  mremap: z.object({ addr: num, offset: num.optional(), old_length: num, new_length: num, flags: flagList(['maymove']).optional(), ...common }).strict(),
  /** a CPU load of `width` bytes (1, 2, 4, 8) at addr + offset: faults are taken as the MMU would; the value is what it read */
  load: z.object({ addr: num, offset: num.optional(), width: width(MEM_WIDTH).optional(), ...common }).strict(),
  /** a CPU store of `value` (`width` bytes) at addr + offset */
  store: z.object({ addr: num, offset: num.optional(), width: width(MEM_WIDTH).optional(), value: num, ...common }).strict(),
  /** pread of the config region: a register by name (COMMAND, PM_CTRL, DEVCTL, BAR0...) or offset; the value is what VFIO's emulation returns */
  config_read: z.object({ ...fdOrDevice, reg: z.union([z.enum(REGS), num]), width: width(CFG_WIDTH).optional(), ...common }).strict(),
  /** pwrite of the config region: VFIO's emulation of the register (COMMAND.MEMORY, PM_CTRL and the FLR bit revoke and un-revoke) */
  config_write: z.object({ ...fdOrDevice, reg: z.union([z.enum(REGS), num]), value: num, width: width(CFG_WIDTH).optional(), ...common }).strict(),
  /** pread of a region; with buf, the kernel copies into that user address (copy_to_user) */
  read: z.object({ fd: num, offset: num, length: num, buf: num.optional(), ...common }).strict(),
  /** pwrite of `value` (`width` bytes) at a region offset of a device fd */
  write: z.object({ fd: num, offset: num, value: num, width: width(MEM_WIDTH).optional(), ...common }).strict(),
  /** fork(2): a new process named by `as`, whose threads (scenario threads P/T) start when it exists; it inherits fds and mappings */
  fork: z.object({ as: name, expect: expect.optional() }).strict(),
  /** the process exits: every fd closed and every mapping removed */
  exit: z.object({ expect: expect.optional() }).strict(),
  /** read /proc/self/maps: the value's lines, which `expect: { line }` can match */
  maps: z.object({ ...common }).strict(),
  /**
   * Synchronization between the scenario's threads, as user programs do with a pipe or an eventfd:
   * post counts an event up, wait blocks until it is above zero and counts it down. A wait that is
   * never posted is a deadlock. The real-kernel executor runs the steps in the model's order, where
   * every wait already comes after its post.
   */
  post: z.object({ event: eventName, expect: expect.optional() }).strict(),
  /** block until `event` has been posted, then count it down (see post) */
  wait: z.object({ event: eventName, expect: expect.optional() }).strict(),
  /** unbind the device from vfio-pci (sysfs unbind / hot-unplug): holds the device lock and waits until every user lets go */
  unbind: z.object({ device: z.string(), expect: expect.optional() }).strict(),

  // ---- the legacy container (src/kernel/vfio/container.ts, vfio_iommu_type1.ts) ----
  /**
   * VFIO_IOMMU_MAP_DMA on a container fd (`container`): [addr + offset, + length) of user memory at
   * `iova`. RAM is pinned; a BAR mapping (a PFN map) is looked up, its raw PFNs mapped, and nothing
   * revokes them later. flags default to [read, write]. The result is the ioctl's (0, and the
   * struct's fields)
   */
  container_map: z
    .object({ container: num, addr: num, offset: num.optional(), length: num, iova: num, flags: z.union([flagList(['read', 'write', 'vaddr']), num]).optional(), ...common })
    .strict(),
  /** VFIO_IOMMU_UNMAP_DMA of [iova, + length) (flags [all]: everything, iova and length 0); `size` of the result is the bytes unmapped */
  container_unmap: z.object({ container: num, iova: num, length: num, flags: z.union([flagList(['all', 'get_dirty_bitmap', 'vaddr']), num]).optional(), ...common }).strict(),

  // ---- iommufd and DMABUF importers (src/kernel/iommufd/, src/kernel/dma-buf/importer.ts) ----
  /** open /dev/iommu: a new iommufd context; the value is its fd */
  iommufd_open: z.object({ flags: flagList(['cloexec']).optional(), ...common }).strict(),
  /** IOMMU_IOAS_ALLOC on an iommufd fd; the value is the IOAS id (ids count from 1 per context) */
  ioas_alloc: z.object({ iommufd: num, flags: num.optional(), ...common }).strict(),
  /**
   * IOMMU_IOAS_MAP_FILE of a DMABUF fd (`fd`) into an IOAS: bytes [start, start + length) of the
   * buffer; or, with `addr` (+ `offset`) instead of `fd`, IOMMU_IOAS_MAP of that much user memory
   * (pinned; a BAR mapping cannot be: EFAULT). At `iova` (with flag fixed_iova; implied when iova
   * is given and flags are not) or at an IOVA the kernel picks. flags default to [readable,
   * writeable]. The value is the IOVA. `iommufd` names the context's fd; without it the calling
   * process's contexts are searched for `ioas`.
   */
  iommufd_map: z
    .object({
      iommufd: num.optional(), ioas: num, fd: num.optional(), start: num.optional(),
      /** user memory instead of a DMABUF: IOMMU_IOAS_MAP of [addr + offset, + length) */
      addr: num.optional(), offset: num.optional(), length: num, iova: num.optional(),
      flags: z.union([flagList(['readable', 'writeable', 'fixed_iova']), num]).optional(), ...common,
    })
    .strict()
    .refine((a) => (a.fd === undefined) !== (a.addr === undefined), 'give fd (a DMABUF: IOMMU_IOAS_MAP_FILE) or addr (user memory: IOMMU_IOAS_MAP)')
    .refine((a) => a.addr === undefined || a.start === undefined, 'start is an offset in a DMABUF; with addr use offset'),
  /** IOMMU_IOAS_UNMAP of [iova, iova + length): the value is the number of bytes unmapped */
  iommufd_unmap: z.object({ iommufd: num.optional(), ioas: num, iova: num, length: num, ...common }).strict(),
  /**
   * A DMA read by a device: a peer device behind an IOAS (`ioas` / `iommufd`), or `device`, a VFIO
   * device bound to an iommufd, through the IOAS it is attached to (not attached: an IOMMU fault).
   * IOVA `iova` (+ `offset`), `width` bytes (default 4). The value is what it read; an IOMMU fault
   * (no translation, or no permission) is errno EIO, with the reason in the step's detail.
   */
  dma_read: z.object({ iommufd: num.optional(), ioas: num.optional(), device: z.string().optional(), iova: num, offset: num.optional(), width: width(MEM_WIDTH).optional(), ...common }).strict()
    .refine(dmaTarget, DMA_TARGET),
  /** A peer device's DMA write of `value`, otherwise as dma_read */
  dma_write: z.object({ iommufd: num.optional(), ioas: num.optional(), device: z.string().optional(), iova: num, offset: num.optional(), width: width(MEM_WIDTH).optional(), value: num, ...common }).strict()
    .refine(dmaTarget, DMA_TARGET),
  /**
   * A generic importer driver attaches to the DMABUF behind `fd`: dynamically (default) with
   * allow_peer2peer `peer2peer` (default true) and, when `revocable` (default true), an
   * invalidate_mappings that only records that it was told; `dynamic: false` is the static
   * dma_buf_attach (no importer ops, so peer2peer false). The value is the attachment id.
   */
  dmabuf_attach: z.object({ fd: num, dynamic: boolFlag.optional(), peer2peer: boolFlag.optional(), revocable: boolFlag.optional(), ...common }).strict(),
  /** dma_buf_map_attachment under the resv lock (VFIO takes a kref); the value is the live mappings */
  dmabuf_map: z.object({ attach: num, ...common }).strict(),
  /** unmap the oldest live mapping (VFIO drops its kref); the value is how often the importer was told to unmap */
  dmabuf_unmap: z.object({ attach: num, ...common }).strict(),
  /** dma_buf_detach and drop the importer's file reference; EBUSY while a mapping is live */
  dmabuf_detach: z.object({ attach: num, ...common }).strict(),

  // ---- KVM (src/kernel/kvm/): a VM of the VMM's process, its memory slots and its guest ----
  /**
   * open /dev/kvm and KVM_CREATE_VM (with `kvm`: that /dev/kvm fd, left open; without it the step
   * opens /dev/kvm and closes it after, as the VM needs no more of it). The value is the VM fd; the
   * VM belongs to this process's mm and listens to its MMU notifier
   */
  kvm_create_vm: z.object({ kvm: num.optional(), ...common }).strict(),
  /**
   * KVM_SET_USER_MEMORY_REGION on a VM fd (`vm`): guest-physical [gpa, gpa + length) onto this
   * process's memory at addr + offset (a BAR mmap, or anonymous memory for guest RAM); slot
   * defaults to 0, flags to none. length 0 deletes the slot. Linux's errnos: EINVAL (misaligned,
   * out of range, an unknown flag, a change of an existing slot's size or address), EEXIST (overlap)
   */
  kvm_set_memory_region: z
    .object({ vm: num, slot: num.optional(), flags: flagList(['log_dirty_pages', 'readonly']).optional(), gpa: num, addr: num, offset: num.optional(), length: num, ...common })
    .strict(),
  /**
   * A guest load of `width` bytes at guest-physical gpa + offset by a vCPU of VM `vm` (one KVM_RUN):
   * a second-stage (EPT) hit reads through the cached PFN; a miss faults the host mapping in
   * (hva_to_pfn) and installs an entry. The value is what it read; a host fault that fails (the BAR
   * is revoked) is errno EFAULT (KVM_RUN's -EFAULT, exit_reason KVM_EXIT_MEMORY_FAULT); a gpa in no
   * memslot is ok with out.exit_reason KVM_EXIT_MMIO (the VMM emulates it)
   */
  guest_load: z.object({ vm: num, gpa: num, offset: num.optional(), width: width(MEM_WIDTH).optional(), ...common }).strict(),
  /** A guest store of `value` (`width` bytes) at gpa + offset, otherwise as guest_load */
  guest_store: z.object({ vm: num, gpa: num, offset: num.optional(), width: width(MEM_WIDTH).optional(), value: num, ...common }).strict(),
} as const;
export type OpName = keyof typeof OPS;
export type OpArgs<N extends OpName> = z.infer<(typeof OPS)[N]>;
export type Expect = z.infer<typeof expect>;

const bar = z
  .object({
    index: z.union([z.number(), z.bigint()]),
    size: num,
    prefetchable: z.boolean().optional(),
    bits: z.union([z.literal(32), z.literal(64), z.literal(32n), z.literal(64n)]).optional(),
    io: z.boolean().optional(),
  })
  .strict();

/** What describes a device's hardware: a profile to start from, and the fields that differ. */
const deviceFields = {
  profile: z.string().optional(),
  bdf: z.string().regex(/^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/, 'a PCI address like 0000:3b:00.0').optional(),
  vendor: num.optional(),
  device: num.optional(),
  bars: z.array(bar).optional(),
  msix: z.union([z.object({ bar: z.union([z.number(), z.bigint()]), offset: num, entries: z.union([z.number(), z.bigint()]) }).strict(), z.null()]).optional(),
  capabilities: z.object({ pm: z.boolean().optional(), pcie: z.boolean().optional(), flr: z.boolean().optional(), ats: z.boolean().optional() }).strict().optional(),
  bus: z.enum(['bridge', 'root']).optional(),
  /** the driver bound to the device: vfio-pci (default) or the nvgrace-gpu variant driver */
  driver: z.enum(['vfio-pci', 'nvgrace-gpu']).optional(),
};

/**
 * A device of the scenario: a name, and its hardware from a profile, a device file (`file:`, relative
 * to the scenario), fields given here, or these together (fields here win over the file's, the
 * file's over its profile's)
 */
export const device = z
  .object({
    name,
    /** a device file (a YAML file with the fields of a device, see docs/devices.md) */
    file: z.string().optional(),
    ...deviceFields,
  })
  .strict();

/**
 * A device file: one device's hardware, described once and used from scenarios (`file:` in a
 * device, or as a profile named `id` with `--devices DIR`)
 */
export const deviceFile = z
  .object({
    /** the profile name `--devices DIR` gives it (default: the file's name without .yaml) */
    id: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'a profile name: lower case, digits, - and _').optional(),
    /** a one-line description, as `vfio-sim devices` lists it */
    title: z.string().optional(),
    /** where the layout comes from (lspci output, a datasheet) */
    source: z.string().optional(),
    ...deviceFields,
  })
  .strict();

/** A lockdep dependency as Documentation/locking/lockdep-design.rst writes it: "A -(EN)-> B". */
export const LOCKDEP_DEP_RE = /^\s*(\S+)\s+-\(([ES][NR])\)->\s+(\S+)\s*$/;

export const scenario = z
  .object({
    name: z.string().min(1),
    description: z.string().optional(),
    config: z.record(z.string(), z.union([z.string(), z.boolean()])).optional(),
    devices: z.array(device).min(1),
    setup: z.array(z.unknown()).optional(),
    threads: z.record(z.string().regex(/^([A-Za-z_][\w-]*\/)?[A-Za-z_][\w-]*$/, 'a thread name, or P/T for thread T of process P'), z.array(z.unknown())).refine((t) => Object.keys(t).length >= 1, 'at least one thread'),
    /** findings a faithful model is expected to report, per kernel ("*" for all) */
    expect_violations: z.record(z.string(), z.array(z.union([z.string(), z.object({ invariant: z.string(), message: z.string().min(1) }).strict()]))).optional(),
    /** the kernels whose behaviour the scenario's expect: lines describe (default: every kernel) */
    kernels: z.array(z.string()).min(1).optional(),
    /** dependencies lockdep recorded earlier in the boot, from code the model does not run: "A -(EN)-> B" */
    lockdep_history: z.array(z.string().regex(LOCKDEP_DEP_RE, 'a dependency "A -(XY)-> B": X is E or S (A held as a writer or a reader), Y is N or R (B taken non-recursively or as a recursive reader)')).optional(),
  })
  .strict();
