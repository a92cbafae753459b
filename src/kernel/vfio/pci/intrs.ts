// drivers/vfio/pci/vfio_pci_intrs.c and vfio_pci_core.c's VFIO_DEVICE_SET_IRQS: MSI and MSI-X
// vectors signalling eventfds, the error and request eventfds. The state a SET_IRQS leaves is the
// device's irq_type (none, MSI or MSI-X), the vectors allocated on the function and, per vector,
// the eventfd it signals; close_device disables whatever is enabled (vfio_pci_core_disable).
// INTx (its enable, mask and unmask) is not modelled: that SET_IRQS answers -ENOTTY with a note.
import type { Kernel } from '../../kernel.ts';
import type { Process } from '../../process.ts';
import { ev, type KGen } from '../../sched/sched.ts';
import { eventfd_ctx_fdget, type EventfdCtx } from '../../fs/eventfd.ts';
import type { VfioPciCoreDevice } from './core.ts';
import { E } from '../../../uapi/errno.ts';
import * as R from '../../../uapi/pci_regs.ts';
import { decode, offsetofend } from '../../../uapi/struct.ts';
import {
  VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_ACTION_TYPE_MASK, VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE,
  VFIO_IRQ_SET_DATA_TYPE_MASK, VFIO_PCI_ERR_IRQ_INDEX, VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_PCI_NUM_IRQS, VFIO_PCI_REQ_IRQ_INDEX, vfio_irq_set,
} from '../../../uapi/vfio.ts';

const U32_MAX = 2 ** 32 - 1;

/** The interrupt state of a vfio-pci device (vdev->irq_type, vdev->ctx, err_trigger, req_trigger). */
export class VfioPciIrqs {
  /** VFIO_PCI_NUM_IRQS: none enabled */
  irq_type = VFIO_PCI_NUM_IRQS;
  /** vectors allocated on the function (pci_alloc_irq_vectors, and MSI-X vectors added dynamically) */
  readonly allocated = new Set<number>();
  /** per vector, the eventfd its interrupt signals */
  readonly trigger = new Map<number, EventfdCtx>();
  err_trigger: EventfdCtx | null = null;
  req_trigger: EventfdCtx | null = null;
}

/**
 * vfio_pci_get_irq_count: INTx when the function has a pin, MSI's and MSI-X's vectors from their
 * capabilities (0 without one), ERR on PCIe only, REQ always.
 */
export function vfio_pci_get_irq_count(vdev: VfioPciCoreDevice, index: number): number {
  const d = vdev.pdev.desc;
  switch (index) {
    case VFIO_PCI_INTX_IRQ_INDEX: return vdev.pdev.cfg[R.PCI_INTERRUPT_PIN] ? 1 : 0;
    case VFIO_PCI_MSI_IRQ_INDEX: return d.msi?.vectors ?? 0;
    case VFIO_PCI_MSIX_IRQ_INDEX: return d.msix?.entries ?? 0;
    case VFIO_PCI_ERR_IRQ_INDEX: return d.capabilities.pcie ? 1 : 0;
    case VFIO_PCI_REQ_IRQ_INDEX: return 1;
  }
  return 0;
}

/**
 * vfio_set_irqs_validate_and_prepare (vfio_main.c): the header against the index's count and the
 * data type; returns the size of the data that follows the header, or -EINVAL.
 */
function vfio_set_irqs_validate_and_prepare(h: { argsz: number; flags: number; index: number; start: number; count: number }, numIrqs: number): number {
  const minsz = offsetofend(vfio_irq_set, 'count');
  if (h.argsz < minsz || h.index >= VFIO_PCI_NUM_IRQS || h.count >= U32_MAX - h.start || h.flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK)) return -E.EINVAL;
  if (h.start >= numIrqs || h.start + h.count > numIrqs) return -E.EINVAL;
  const size = { [VFIO_IRQ_SET_DATA_NONE]: 0, [VFIO_IRQ_SET_DATA_BOOL]: 1, [VFIO_IRQ_SET_DATA_EVENTFD]: 4 }[h.flags & VFIO_IRQ_SET_DATA_TYPE_MASK];
  if (size === undefined) return -E.EINVAL;
  if (size && h.argsz - minsz < h.count * size) return -E.EINVAL;
  return h.count * size;
}

/**
 * VFIO_DEVICE_SET_IRQS (vfio_pci_ioctl_set_irqs): validate the header, copy the data that follows
 * (-EFAULT past the bytes passed), then under igate the action for the index.
 */
export function* vfio_pci_ioctl_set_irqs(k: Kernel, p: Process, vdev: VfioPciCoreDevice, arg: Uint8Array): KGen<number> {
  const minsz = offsetofend(vfio_irq_set, 'count');
  if (arg.length < minsz) return -E.EFAULT;
  const d = decode(vfio_irq_set, arg);
  const h = { argsz: Number(d.argsz), flags: Number(d.flags), index: Number(d.index), start: Number(d.start), count: Number(d.count) };
  const size = vfio_set_irqs_validate_and_prepare(h, vfio_pci_get_irq_count(vdev, h.index));
  if (size < 0) return size;
  if (arg.length < minsz + size) return -E.EFAULT;
  const data = arg.subarray(minsz, minsz + size);
  yield* vdev.igate.lock();
  const r = yield* vfio_pci_set_irqs_ioctl(k, p, vdev, h.flags, h.index, h.start, h.count, data);
  yield* vdev.igate.unlock();
  return r;
}

/**
 * vfio_pci_set_irqs_ioctl: the handler for (index, action). MSI and MSI-X have TRIGGER only (MASK
 * and UNMASK are -ENOTTY: "Need masking support exported"); ERR (on PCIe) and REQ have TRIGGER.
 */
export function* vfio_pci_set_irqs_ioctl(k: Kernel, p: Process | null, vdev: VfioPciCoreDevice, flags: number, index: number, start: number, count: number, data: Uint8Array): KGen<number> {
  const action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
  switch (index) {
    case VFIO_PCI_INTX_IRQ_INDEX:
      k.note('VFIO_DEVICE_SET_IRQS of INTx is not modelled');
      return -E.ENOTTY;
    case VFIO_PCI_MSI_IRQ_INDEX:
    case VFIO_PCI_MSIX_IRQ_INDEX:
      if (action !== VFIO_IRQ_SET_ACTION_TRIGGER) return -E.ENOTTY;
      return yield* vfio_pci_set_msi_trigger(k, p, vdev, index, start, count, flags, data);
    case VFIO_PCI_ERR_IRQ_INDEX:
      if (action !== VFIO_IRQ_SET_ACTION_TRIGGER || !vdev.pdev.desc.capabilities.pcie) return -E.ENOTTY;
      return yield* vfio_pci_set_ctx_trigger_single(k, p, vdev, 'err_trigger', start, count, flags, data);
    case VFIO_PCI_REQ_IRQ_INDEX:
      if (action !== VFIO_IRQ_SET_ACTION_TRIGGER) return -E.ENOTTY;
      return yield* vfio_pci_set_ctx_trigger_single(k, p, vdev, 'req_trigger', start, count, flags, data);
  }
  return -E.ENOTTY;
}

const fdAt = (data: Uint8Array, i: number) => new DataView(data.buffer, data.byteOffset, data.byteLength).getInt32(4 * i, true);
const irqName = (index: number) => (index === VFIO_PCI_MSIX_IRQ_INDEX ? 'MSI-X' : 'MSI');

/** eventfd_signal: the counter goes up by one (what a guest's interrupt injection reads). */
function eventfd_signal(ctx: EventfdCtx): void {
  ctx.count++;
}

/**
 * vfio_pci_set_msi_trigger: count 0 with DATA_NONE disables; eventfds enable (when nothing is
 * enabled) and set a block of vectors; DATA_NONE/BOOL on an enabled index fire the vectors'
 * eventfds (loopback). Another index enabled is -EINVAL.
 */
function* vfio_pci_set_msi_trigger(k: Kernel, p: Process | null, vdev: VfioPciCoreDevice, index: number, start: number, count: number, flags: number, data: Uint8Array): KGen<number> {
  const irqs = vdev.irqs, msix = index === VFIO_PCI_MSIX_IRQ_INDEX;
  if (irqs.irq_type === index && !count && flags & VFIO_IRQ_SET_DATA_NONE) {
    yield* vfio_msi_disable(k, vdev, msix);
    return 0;
  }
  if (irqs.irq_type !== index && irqs.irq_type !== VFIO_PCI_NUM_IRQS) return -E.EINVAL;
  if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
    if (irqs.irq_type === index) return yield* vfio_msi_set_block(k, p, vdev, start, count, data, msix);
    const r = yield* vfio_msi_enable(k, vdev, start + count, msix);
    if (r) return r;
    const s = yield* vfio_msi_set_block(k, p, vdev, start, count, data, msix);
    if (s) yield* vfio_msi_disable(k, vdev, msix);
    return s;
  }
  if (irqs.irq_type !== index) return -E.EINVAL;
  for (let i = start; i < start + count; i++) {
    const t = irqs.trigger.get(i);
    if (t && (flags & VFIO_IRQ_SET_DATA_NONE || data[i - start])) eventfd_signal(t);
  }
  return 0;
}

/**
 * vfio_pci_memory_lock_and_enable / _unlock_and_restore: the MSI(-X) capability is programmed with
 * memory_lock held for write and memory decode on (the MSI-X table lives in a BAR); COMMAND is
 * restored after, in the hardware only (VFIO's virtual COMMAND, and so revocation, is untouched).
 */
function* withMemoryEnabled(vdev: VfioPciCoreDevice, body: () => KGen): KGen {
  yield* vdev.memory_lock.down_write();
  const cmd = vdev.pdev.command();
  if (!vdev.memoryEnabled()) yield* vdev.pdev.hwConfigWrite(R.PCI_COMMAND, 2, cmd | R.PCI_COMMAND_MEMORY);
  yield* body();
  if (vdev.pdev.command() !== cmd) yield* vdev.pdev.hwConfigWrite(R.PCI_COMMAND, 2, cmd);
  yield* vdev.memory_lock.up_write();
}

/**
 * The MSI-X Enable bit pci_alloc_irq_vectors sets and pci_free_irq_vectors clears in the function's
 * Message Control. vfio-pci gives the MSI-X capability no virtual bits (vfio_pci_config.c has no
 * perm table for it), so a config read through VFIO shows it; the model mirrors it into vconfig.
 * MSI's Enable bit, which VFIO virtualizes, is left as it is.
 */
function* setMsixEnable(vdev: VfioPciCoreDevice, on: boolean): KGen {
  const cap = vdev.pdev.capOffset(R.PCI_CAP_ID_MSIX);
  if (!cap) return;
  const off = cap + R.PCI_MSIX_FLAGS;
  yield ev('pci_msix_enable', '', 'w', undefined, [vdev.pdev.cfgSpan(off, 2, 'w'), vdev.vconfigSpan(off, 2, 'w')]);
  for (const cfg of [vdev.pdev.cfg, vdev.vconfig]) {
    const v = cfg[off] | (cfg[off + 1] << 8);
    const n = on ? v | R.PCI_MSIX_FLAGS_ENABLE : v & ~R.PCI_MSIX_FLAGS_ENABLE;
    cfg[off] = n & 0xff;
    cfg[off + 1] = n >> 8;
  }
}

/** vfio_msi_enable: nothing may be enabled (-EINVAL); allocate `nvec` vectors. */
function* vfio_msi_enable(k: Kernel, vdev: VfioPciCoreDevice, nvec: number, msix: boolean): KGen<number> {
  const irqs = vdev.irqs;
  if (irqs.irq_type !== VFIO_PCI_NUM_IRQS) return -E.EINVAL;
  yield* withMemoryEnabled(vdev, function* () {
    for (let v = 0; v < nvec; v++) irqs.allocated.add(v);
    if (msix) yield* setMsixEnable(vdev, true);
  });
  irqs.irq_type = msix ? VFIO_PCI_MSIX_IRQ_INDEX : VFIO_PCI_MSI_IRQ_INDEX;
  k.note(`${vdev.name}: ${irqName(irqs.irq_type)} enabled with ${nvec} vector(s)`);
  return 0;
}

/**
 * vfio_msi_set_vector_signal: drop the vector's eventfd; with fd >= 0 take the new one. A vector
 * not allocated is allocated now on MSI-X where the platform allocates dynamically (x86: the
 * model's only platform), else -EINVAL; a bad fd -EBADF, a file that is not an eventfd -EINVAL.
 */
function* vfio_msi_set_vector_signal(k: Kernel, p: Process | null, vdev: VfioPciCoreDevice, vector: number, fd: number, msix: boolean): KGen<number> {
  const irqs = vdev.irqs;
  irqs.trigger.delete(vector);
  if (fd < 0 || !p) return 0;
  if (!irqs.allocated.has(vector)) {
    if (!msix) return -E.EINVAL;
    irqs.allocated.add(vector); // stays allocated until MSI-X is disabled
  }
  const ctx = yield* eventfd_ctx_fdget(k, p, fd);
  if (typeof ctx === 'number') return ctx;
  irqs.trigger.set(vector, ctx);
  return 0;
}

/** vfio_msi_set_block: set vectors start.. in turn; on an error undo those set by this call. */
function* vfio_msi_set_block(k: Kernel, p: Process | null, vdev: VfioPciCoreDevice, start: number, count: number, data: Uint8Array | null, msix: boolean): KGen<number> {
  let ret = 0, j = start;
  for (let i = 0; i < count && !ret; i++, j++) ret = yield* vfio_msi_set_vector_signal(k, p, vdev, j, data && data.length ? fdAt(data, i) : -1, msix);
  if (ret) for (let i = start; i < j; i++) yield* vfio_msi_set_vector_signal(k, p, vdev, i, -1, msix);
  return ret;
}

/** vfio_msi_disable: every vector's eventfd dropped, the vectors freed, nothing enabled. */
export function* vfio_msi_disable(k: Kernel, vdev: VfioPciCoreDevice, msix: boolean): KGen {
  const irqs = vdev.irqs;
  for (const v of [...irqs.trigger.keys()]) yield* vfio_msi_set_vector_signal(k, null, vdev, v, -1, msix);
  yield* withMemoryEnabled(vdev, function* () {
    irqs.allocated.clear();
    if (msix) yield* setMsixEnable(vdev, false);
  });
  k.note(`${vdev.name}: ${msix ? 'MSI-X' : 'MSI'} disabled`);
  irqs.irq_type = VFIO_PCI_NUM_IRQS;
}

/**
 * vfio_pci_set_ctx_trigger_single (ERR, REQ; start 0, count at most 1): DATA_NONE fires the eventfd
 * (count 1) or drops it (count 0); BOOL fires it; EVENTFD -1 drops it, a valid fd replaces it.
 */
function* vfio_pci_set_ctx_trigger_single(k: Kernel, p: Process | null, vdev: VfioPciCoreDevice, which: 'err_trigger' | 'req_trigger', start: number, count: number, flags: number, data: Uint8Array): KGen<number> {
  if (start !== 0 || count > 1) return -E.EINVAL;
  const irqs = vdev.irqs;
  if (flags & VFIO_IRQ_SET_DATA_NONE) {
    const t = irqs[which];
    if (t) {
      if (count) eventfd_signal(t);
      else irqs[which] = null;
      return 0;
    }
    return -E.EINVAL;
  }
  if (flags & VFIO_IRQ_SET_DATA_BOOL) {
    if (!count) return -E.EINVAL;
    if (data[0] && irqs[which]) eventfd_signal(irqs[which]!);
    return 0;
  }
  if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
    if (!count) return -E.EINVAL;
    const fd = fdAt(data, 0);
    if (fd === -1) irqs[which] = null;
    else if (fd >= 0 && p) {
      const ctx = yield* eventfd_ctx_fdget(k, p, fd);
      if (typeof ctx === 'number') return ctx;
      irqs[which] = ctx;
    }
    return 0;
  }
  return -E.EINVAL;
}

/** vfio_pci_core_disable's part: whatever MSI or MSI-X is enabled goes; the ERR and REQ eventfds are dropped. */
export function* vfio_pci_irqs_disable(k: Kernel, vdev: VfioPciCoreDevice): KGen {
  const t = vdev.irqs.irq_type;
  if (t === VFIO_PCI_MSI_IRQ_INDEX || t === VFIO_PCI_MSIX_IRQ_INDEX) yield* vfio_msi_disable(k, vdev, t === VFIO_PCI_MSIX_IRQ_INDEX);
  vdev.irqs.err_trigger = null;
  vdev.irqs.req_trigger = null;
}
