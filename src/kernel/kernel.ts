// The simulated machine: PCI devices bound to vfio-pci, processes, the scheduler, the kernel
// variant and configuration, and the invariant findings of the run.
import { Sched, type DepType, type KGen, type Task } from './sched/sched.ts';
import { PciBus, type PciDevDesc } from './pci/device.ts';
import { VfioDevice, VfioDeviceSet } from './vfio/vfio_main.ts';
import { legacyMmapOps, VfioPciCoreDevice, vfioPciMmapOps, vfioPciOps } from './vfio/pci/core.ts';
import { resolveKconfig, type Kconfig, type KconfigInput } from './kconfig.ts';
import { DEFAULT_KERNEL, KERNELS, type KernelVariant } from './variants.ts';
import type { DmaBuf } from './dma-buf/dma-buf.ts';
import type { IommufdCtx } from './iommufd/iommufd.ts';
import type { Kvm } from './kvm/kvm_main.ts';
import { vfio_device_set_group, type VfioGroup } from './vfio/group.ts';
import type { VfioContainer } from './vfio/container.ts';
import type { VmOps } from './mm/vma.ts';
import type { ImporterAttachment } from './dma-buf/importer.ts';
import { anonVmOps } from './mm/anon.ts';
import { nvgraceOps } from './vfio/pci/nvgrace.ts';
import { Process, type ThreadCtx } from './process.ts';

export interface Violation {
  invariant: string;
  message: string;
  /** index into the run's steps of the operation in progress, when known */
  step?: number;
}

export interface KernelOptions {
  devices: PciDevDesc[];
  config?: KconfigInput;
  kernel?: string;
  mutant?: string | null;
  /** dependencies lockdep learned earlier in the boot, from code the model does not run */
  lockdepHistory?: LockdepDep[];
}

/** "from -(dep)-> to", as a scenario's lockdep_history gives it. */
export interface LockdepDep {
  from: string;
  dep: DepType;
  to: string;
}

export class UnknownKernelError extends Error {}

export class Kernel {
  readonly sched = new Sched();
  readonly pci = new PciBus(this);
  readonly config: Kconfig;
  readonly variant: KernelVariant;
  readonly mutant: string | null;
  readonly vfio = new Map<string, VfioPciCoreDevice>();
  readonly procs: Process[] = [];
  readonly dmabufs = new Set<DmaBuf>();
  /** open /dev/iommu contexts (iommufd/iommufd.ts), until their file is released */
  readonly iommufds = new Set<IommufdCtx>();
  /** VMs (kvm/kvm_main.ts), until their file is released */
  readonly kvms = new Set<Kvm>();
  /** the IOMMU groups, /dev/vfio/N (vfio/group.ts): one per device, in the order listed */
  readonly vfioGroups: VfioGroup[] = [];
  /** live legacy containers, /dev/vfio/vfio (vfio/container.ts), until their last reference goes */
  readonly vfioContainers = new Set<VfioContainer>();
  /** the test importer driver's attachments, by id (dma-buf/importer.ts) */
  readonly importers = new Map<number, ImporterAttachment>();
  readonly vfioPciMmapOps: VmOps;
  /** the pre-series vm_ops, which variant drivers with their own mmap (nvgrace-gpu) keep using */
  readonly legacyMmapOps: VmOps;
  readonly anonVmOps: VmOps;
  readonly violations: Violation[] = [];
  private readonly seen = new Set<string>();
  private readonly ids = new Map<string, number>();
  /** set by the runner: the step index to blame for a violation found now */
  blame: (() => number | undefined) | null = null;

  constructor(opts: KernelOptions) {
    const v = KERNELS[opts.kernel ?? DEFAULT_KERNEL];
    if (!v) throw new UnknownKernelError(`unknown kernel ${opts.kernel} (known: ${Object.keys(KERNELS).join(', ')})`);
    this.variant = v;
    this.config = resolveKconfig(opts.config);
    this.mutant = opts.mutant ?? null;
    this.vfioPciMmapOps = vfioPciMmapOps(this);
    this.legacyMmapOps = legacyMmapOps(this);
    this.anonVmOps = anonVmOps(this);
    for (const d of opts.lockdepHistory ?? []) this.sched.lockdep.record(d.from, d.dep, d.to, `earlier in the boot: ${d.from} -(${d.dep})-> ${d.to}`);
    const sets = new Map<string, VfioDeviceSet>();
    for (const d of opts.devices) {
      const pdev = this.pci.add(d);
      const vfio = new VfioDevice(this, d.name);
      vfio.pciName = d.bdf;
      vfio.group = vfio_device_set_group(this, vfio);
      // vfio_assign_device_set: behind a bridge, by bus (domain:bus); on the root bus, alone
      const key = pdev.desc.bus === 'bridge' ? `bus ${pdev.busId}` : `dev ${d.name}`;
      let set = sets.get(key);
      if (!set) sets.set(key, (set = new VfioDeviceSet(this, pdev.desc.bus === 'bridge' ? `pci${pdev.busId}` : d.name)));
      set.devices.push(vfio);
      vfio.devSet = set;
      const vdev = new VfioPciCoreDevice(this, pdev, vfio);
      vfio.ops = this.deviceOps(vdev);
      this.vfio.set(d.name, vdev);
    }
  }

  /** The vfio_device_ops the device's driver registers, bound to it. */
  private deviceOps(vdev: VfioPciCoreDevice) {
    return vdev.pdev.desc.driver === 'nvgrace-gpu' ? nvgraceOps(this, vdev, vfioPciOps(this, vdev)) : vfioPciOps(this, vdev);
  }

  /**
   * After this kernel was copied from another (ScenarioRun.fork): make the ops tables that close
   * over the kernel or a device again, for this copy, in place, so that every VMA and file of the
   * copy that points at a table gets the rebound one.
   */
  rebindOps(): void {
    Object.assign(this.vfioPciMmapOps, vfioPciMmapOps(this));
    Object.assign(this.legacyMmapOps, legacyMmapOps(this));
    Object.assign(this.anonVmOps, anonVmOps(this));
    for (const vdev of this.vfio.values()) Object.assign(vdev.vfio.ops!, this.deviceOps(vdev));
  }

  nextId(kind: string): number {
    const n = this.ids.get(kind) ?? 0;
    this.ids.set(kind, n + 1);
    return n;
  }
  /** Is the named design variant (mutant) switched on? */
  mut(name: string): boolean {
    return this.mutant === name;
  }
  note(s: string): void {
    this.sched.note(s);
  }
  violation(invariant: string, message: string): void {
    const key = `${invariant}\u0000${message}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.violations.push({ invariant, message, step: this.blame?.() });
    this.note(`VIOLATION ${invariant}: ${message}`);
  }
  /** A use of an object that has been freed is a use-after-free. */
  checkAlive(obj: { freed: boolean }, what: string): void {
    if (obj.freed) this.violation('lifetime', `use after free: ${what}`);
  }

  newProcess(name: string): Process {
    const p = new Process(this.sched, this.procs.length + 1, name);
    this.procs.push(p);
    return p;
  }
  spawn(proc: Process, name: string, gen: KGen): Task {
    const ctx: ThreadCtx = { proc, name };
    return this.sched.spawn(name, gen, ctx);
  }
  currentProcess(): Process {
    return (this.sched.cur().owner as ThreadCtx).proc;
  }
}
