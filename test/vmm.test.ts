// The VMM's device bring-up through the device cdev and iommufd (drivers/vfio/device_cdev.c,
// drivers/vfio/iommufd.c, drivers/iommu/iommufd/device.c, ioas.c, pages.c) and MSI-X through
// VFIO_DEVICE_SET_IRQS (drivers/vfio/pci/vfio_pci_intrs.c): the bundled scenarios' results and
// errnos, and the same calls as raw binary ioctls through the TypeScript API, with the state they
// leave (binding, attachment, vectors and their eventfds).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createKernel, decode, encode, iommufdUapi as I, uapi, SyscallError, type SimKernel, type SimProcess } from '../src/index.ts';
import { loadScenarioFile } from '../src/scenario/loader.ts';
import { runScenario } from '../src/scenario/report.ts';
import { KERNELS } from '../src/kernel/variants.ts';

const MiB = 2 ** 20;
const PROT_RW = 3, MAP_SHARED = 1, MAP_PRIVATE_ANON = 0x22;

/** The steps of a bundled scenario by index: result and detail. */
function runFile(file: string, kernel?: string) {
  const scn = loadScenarioFile(file);
  const { result } = runScenario(scn, { kernel });
  return { scn, result, step: (i: number) => result.steps.filter((s) => s.thread === scn.threads[0].name)[i] };
}

describe('scenarios/vmm/iommufd-bringup.yaml', () => {
  for (const kernel of Object.keys(KERNELS)) {
    test(`passes on ${kernel}, with QEMU's ids and the device's DMA through its IOAS`, () => {
      const { result, step } = runFile('scenarios/vmm/iommufd-bringup.yaml', kernel);
      assert.deepEqual(result.problems, []);
      assert.deepEqual(result.violations, []);
      assert.deepEqual(step(2).result, { errno: 'EINVAL' }, 'GET_INFO before the bind');
      assert.equal((step(3).result as { out: Record<string, number> }).out.out_devid, 1, 'the device is the context\'s first object');
      assert.equal((step(4).result as { out: Record<string, number> }).out.out_ioas_id, 2);
      assert.equal((step(5).result as { out: Record<string, number> }).out.pt_id, 2);
      assert.deepEqual((step(16).result as { out: Record<string, number> }).out, { argsz: 16, flags: uapi.VFIO_IRQ_INFO_EVENTFD, index: 2, count: 9 });
      assert.deepEqual([step(23).result, step(39).result], [{ ok: true, value: 0x8008 }, { ok: true, value: 0x0008 }], 'MSI-X Enable in Message Control, then clear');
      assert.deepEqual(step(26).result, { ok: true, value: '0x1122334455667788' }, 'the device\'s DMA reached guest RAM');
      assert.deepEqual(step(27).result, { ok: true, value: 0x600df00d }, 'peer-to-peer read of BAR2 through its IOVA');
      assert.match(step(31).detail ?? '', /IOMMU fault at iova 0x8000001000 \(no translation\)/, 'decode off: the BAR\'s IOVA is revoked');
      assert.deepEqual(step(32).result, { ok: true, value: '0x1122334455667788' }, 'guest RAM is not');
      assert.deepEqual(step(34).result, { errno: 'EIO' }, 'no remap when decode is back');
      assert.deepEqual(step(37).result, { ok: true, value: 0x600df00d }, 'mapped again by the VMM');
      assert.match(step(43).detail ?? '', /not attached to an IOAS \(blocking domain\)/);
      const dev = result.final.devices[0] as { iommufd: unknown; irqs: { type: string; vectors: number[] }; open_count: number };
      assert.deepEqual([dev.iommufd, dev.irqs.type, dev.irqs.vectors, dev.open_count], [null, 'none', [], 0]);
    });
  }
});

describe('scenarios/vmm/iommufd-wrong-order-errnos.yaml', () => {
  test('every wrong order gets Linux\'s errno', () => {
    const { result, step } = runFile('scenarios/vmm/iommufd-wrong-order-errnos.yaml');
    assert.deepEqual(result.problems, []);
    assert.deepEqual(result.violations, []);
    const errno = (i: number) => ('errno' in step(i).result ? (step(i).result as { errno: string }).errno : 'ok');
    const want: Array<[number, string, string]> = [
      [1, 'EINVAL', 'REGION_INFO before bind'], [2, 'EINVAL', 'ATTACH before bind'], [3, 'EINVAL', 'DETACH before bind'],
      [4, 'EINVAL', 'SET_IRQS before bind'], [5, 'EINVAL', 'FEATURE before bind'], [6, 'EINVAL', 'pread before bind'], [7, 'EINVAL', 'mmap before bind'],
      [10, 'EINVAL', 'bind iommufd -1'], [11, 'EINVAL', 'bind flags'], [12, 'EINVAL', 'bind argsz 12'], [13, 'EBADF', 'bind closed fd'],
      [14, 'EBADFD', 'bind an eventfd'], [15, 'ok', 'bind'], [16, 'EINVAL', 'double bind'], [18, 'EINVAL', 'bind of a second cdev file'],
      [20, 'EBUSY', 'group open while the cdev holds the device'], [21, 'ENOENT', 'attach to no object'], [22, 'EINVAL', 'attach to a device object'],
      [28, 'EBUSY', 'destroy the attached IOAS'], [29, 'ok', 'destroy the detached IOAS'], [30, 'EBUSY', 'destroy the bound device'],
      [32, 'ok', 'detach a detached device'], [36, 'EFAULT', 'IOAS_MAP of a BAR mapping'], [38, 'EINVAL', 'sub-page user_va'],
      [39, 'EOPNOTSUPP', '__reserved'], [40, 'EINVAL', 'neither readable nor writeable'], [41, 'ENOENT', 'IOAS_MAP to a device id'],
      [43, 'EINVAL', 'index 5'], [44, 'EINVAL', 'start past the vectors'], [45, 'EINVAL', 'start + count past the vectors'],
      [46, 'EINVAL', 'argsz too small for the data'], [47, 'EINVAL', 'two data types'], [48, 'EINVAL', 'not an eventfd'], [49, 'EBADF', 'no such fd'],
      [50, 'EINVAL', 'fire with nothing enabled'], [52, 'ENOTTY', 'MSI-X mask'], [58, 'ok', 'close while attached'],
      [59, 'EIO', 'DMA after the close'], [61, 'EINVAL', 'bind on a group file'], [62, 'ENOTTY', 'attach on a group file'], [65, 'EBUSY', 'bind while the group is open'],
    ];
    assert.deepEqual(want.map(([i, , what]) => `${what}: ${errno(i)}`), want.map(([, e, what]) => `${what}: ${e}`));
    // Linux's own answers carry no "not modelled" note
    assert.ok(result.steps.every((s) => !(s.detail ?? '').includes('not modelled')));
  });
});

// ---- the same through the TypeScript API, as raw structs ----

interface Vmm {
  sim: SimKernel;
  p: SimProcess;
  dev: number;
  ictx: number;
}
function ioctl(p: SimProcess, fd: number, cmd: number, arg: Uint8Array): number | string {
  try {
    return p.ioctl(fd, cmd, arg);
  } catch (e) {
    if (e instanceof SyscallError) return e.errno;
    throw e;
  }
}
function bind(v: { p: SimProcess; dev: number }, iommufd: number): number | string {
  const arg = encode(uapi.vfio_device_bind_iommufd, { argsz: uapi.vfio_device_bind_iommufd.size, iommufd });
  const r = ioctl(v.p, v.dev, uapi.IOCTLS.VFIO_DEVICE_BIND_IOMMUFD, arg);
  return r === 0 ? Number(decode(uapi.vfio_device_bind_iommufd, arg).out_devid) : r;
}
function ioasAlloc(v: Vmm): number {
  const arg = encode(I.iommu_ioas_alloc, { size: I.iommu_ioas_alloc.size });
  assert.equal(v.p.ioctl(v.ictx, I.IOMMU_IOAS_ALLOC, arg), 0);
  return Number(decode(I.iommu_ioas_alloc, arg).out_ioas_id);
}
function attach(v: Vmm, ptId: number): number | string {
  return ioctl(v.p, v.dev, uapi.IOCTLS.VFIO_DEVICE_ATTACH_IOMMUFD_PT, encode(uapi.vfio_device_attach_iommufd_pt, { argsz: 16, pt_id: ptId }));
}
function destroy(v: Vmm, id: number): number | string {
  return ioctl(v.p, v.ictx, I.IOMMU_DESTROY, encode(I.iommu_destroy, { size: I.iommu_destroy.size, id }));
}
/** VFIO_DEVICE_SET_IRQS with s32 eventfds (DATA_EVENTFD) or nothing (DATA_NONE) after the header. */
function setIrqs(v: Vmm, index: number, flags: number, start: number, count: number, fds: number[] = []): number | string {
  const hdr = uapi.vfio_irq_set.size;
  const arg = new Uint8Array(hdr + 4 * fds.length);
  arg.set(encode(uapi.vfio_irq_set, { argsz: arg.length, flags, index, start, count }));
  fds.forEach((fd, i) => new DataView(arg.buffer).setInt32(hdr + 4 * i, fd, true));
  return ioctl(v.p, v.dev, uapi.IOCTLS.VFIO_DEVICE_SET_IRQS, arg);
}
const TRIGGER_EVENTFD = uapi.VFIO_IRQ_SET_DATA_EVENTFD | uapi.VFIO_IRQ_SET_ACTION_TRIGGER;
const TRIGGER_NONE = uapi.VFIO_IRQ_SET_DATA_NONE | uapi.VFIO_IRQ_SET_ACTION_TRIGGER;

function bringUp(): Vmm {
  const sim = createKernel({ devices: [{ name: 'gpu0', profile: 'h100' }] });
  const p = sim.spawn();
  const v = { sim, p, dev: p.open('/dev/vfio/devices/vfio0'), ictx: p.open('/dev/iommu') };
  assert.equal(bind(v, v.ictx), 1);
  return v;
}
const vdevOf = (v: Vmm, name = 'gpu0') => v.sim.k.vfio.get(name)!;

describe('device cdev and iommufd through the API', () => {
  test('a cdev file needs the bind; the bind holds the context past its fd; closing while attached detaches and unbinds', () => {
    const sim = createKernel({ devices: [{ name: 'gpu0', profile: 'h100' }] });
    const p = sim.spawn();
    const dev = p.open('/dev/vfio/devices/vfio0');
    const info = encode(uapi.vfio_device_info, { argsz: uapi.vfio_device_info.size });
    assert.equal(ioctl(p, dev, uapi.IOCTLS.VFIO_DEVICE_GET_INFO, info), 'EINVAL');
    assert.throws(() => p.mmap(0, 2 * MiB, PROT_RW, MAP_SHARED, dev, 0), (e: unknown) => e instanceof SyscallError && e.errno === 'EINVAL');
    const ictx = p.open('/dev/iommu');
    const v = { sim, p, dev, ictx };
    assert.equal(bind(v, ictx), 1);
    assert.equal(ioctl(p, dev, uapi.IOCTLS.VFIO_DEVICE_GET_INFO, info), 0);
    const vdev = vdevOf(v);
    assert.equal(vdev.vfio.open_count, 1, 'the bind opened the device');
    const ioas = ioasAlloc(v);
    assert.equal(attach(v, ioas), 0);
    assert.equal(vdev.vfio.iommufd_device?.ioas?.id, ioas);
    assert.equal(destroy(v, ioas), 'EBUSY', 'the attached device is a user of the IOAS');
    assert.equal(destroy(v, 1), 'EBUSY', 'the bound driver is a user of the device object');
    const ctx = [...sim.k.iommufds][0];
    p.close(ictx);
    assert.ok(sim.k.iommufds.has(ctx), 'the bound device keeps the context');
    assert.equal(ctx.file.refs, 1);
    p.close(dev);
    assert.equal(vdev.vfio.open_count, 0);
    assert.equal(vdev.vfio.iommufd_device, null);
    assert.ok(!sim.k.iommufds.has(ctx), 'the context went with the device file');
    assert.deepEqual(sim.violations, []);
  });

  test('IOMMU_IOAS_MAP pins: the device\'s DMA reaches guest RAM, a BAR mapping cannot be pinned', () => {
    const v = bringUp();
    const ioas = ioasAlloc(v);
    assert.equal(attach(v, ioas), 0);
    const ram = v.p.mmap(0, 2 * MiB, PROT_RW, MAP_PRIVATE_ANON, -1, 0);
    const map = (user_va: number, flags = I.IOMMU_IOAS_MAP_READABLE | I.IOMMU_IOAS_MAP_WRITEABLE | I.IOMMU_IOAS_MAP_FIXED_IOVA) =>
      ioctl(v.p, v.ictx, I.IOMMU_IOAS_MAP, encode(I.iommu_ioas_map, { size: I.iommu_ioas_map.size, flags, ioas_id: ioas, user_va: BigInt(user_va), length: BigInt(2 * MiB), iova: 0n }));
    assert.equal(map(ram), 0);
    v.p.store(ram + 0x3000, 4, 0xcafe);
    const dom = vdevOf(v).vfio.iommufd_device!.ioas!.domain;
    const t = dom.lookup(0x3000, 4)!;
    assert.equal(v.sim.k.pci.cpuAccess(t.pa + (0x3000 - t.iova), 4, false, 0n, 'test'), 0xcafen, 'the IOVA translates to the page the CPU wrote');
    const bar = v.p.mmap(0, 2 * MiB, PROT_RW, MAP_SHARED, v.dev, 2 * 2 ** 40);
    assert.equal(map(bar, I.IOMMU_IOAS_MAP_READABLE), 'EFAULT');
    v.p.close(v.dev);
    v.p.close(v.ictx);
    v.p.munmap(bar, 2 * MiB);
    v.p.munmap(ram, 2 * MiB);
    assert.deepEqual(v.sim.violations, []);
  });
});

describe('VFIO_DEVICE_SET_IRQS for MSI-X', () => {
  test('enable, add a vector while enabled, fire, the other index refused, disable: the state each leaves', () => {
    const v = bringUp();
    const irqs = vdevOf(v).irqs;
    const [e0, e1, e2] = [v.p.eventfd(), v.p.eventfd(), v.p.eventfd()];
    const X = uapi.VFIO_PCI_MSIX_IRQ_INDEX;
    const ctl = vdevOf(v).pdev.capOffset(0x11) + 2; // MSI-X Message Control, read through VFIO's config region
    const msixCtl = () => {
      const b = new Uint8Array(2);
      v.p.pread(v.dev, b, 7 * 2 ** 40 + ctl);
      return b[0] | (b[1] << 8);
    };
    assert.equal(msixCtl(), 8, 'table size 9, not enabled');
    assert.equal(setIrqs(v, X, TRIGGER_EVENTFD, 0, 2, [e0, e1]), 0);
    assert.equal(msixCtl(), 0x8008, 'MSI-X Enable set');
    assert.equal(irqs.irq_type, X);
    assert.deepEqual([...irqs.allocated].sort(), [0, 1]);
    assert.deepEqual([...irqs.trigger.keys()].sort(), [0, 1]);
    // x86 allocates MSI-X vectors dynamically: a vector past those enabled is added
    assert.equal(setIrqs(v, X, TRIGGER_EVENTFD, 5, 1, [e2]), 0);
    assert.deepEqual([...irqs.allocated].sort(), [0, 1, 5]);
    // DATA_NONE fires the eventfds of the vectors named (loopback)
    assert.equal(setIrqs(v, X, TRIGGER_NONE, 0, 6), 0);
    assert.deepEqual([0, 1, 5].map((i) => irqs.trigger.get(i)!.count), [1n, 1n, 1n]);
    // MSI while MSI-X is enabled, and MSI-X mask, are refused
    assert.equal(setIrqs(v, uapi.VFIO_PCI_MSI_IRQ_INDEX, TRIGGER_EVENTFD, 0, 1, [e0]), 'EINVAL');
    assert.equal(setIrqs(v, X, uapi.VFIO_IRQ_SET_DATA_NONE | uapi.VFIO_IRQ_SET_ACTION_MASK, 0, 1), 'ENOTTY');
    // eventfd -1 drops a vector's eventfd; the vector stays allocated
    assert.equal(setIrqs(v, X, TRIGGER_EVENTFD, 1, 1, [-1]), 0);
    assert.deepEqual([...irqs.trigger.keys()].sort(), [0, 5]);
    // a bad eventfd in a block undoes the block's earlier vectors
    assert.equal(setIrqs(v, X, TRIGGER_EVENTFD, 2, 2, [e0, v.ictx]), 'EINVAL');
    assert.ok(!irqs.trigger.has(2) && !irqs.trigger.has(3));
    assert.equal(setIrqs(v, X, TRIGGER_NONE, 0, 0), 0);
    assert.deepEqual([irqs.irq_type, irqs.allocated.size, irqs.trigger.size, msixCtl()], [uapi.VFIO_PCI_NUM_IRQS, 0, 0, 8]);
  });

  test('enabling with memory decode off turns decode on only while the MSI-X table is programmed', () => {
    const v = bringUp();
    const cmd = (value: number) => v.p.pwrite(v.dev, new Uint8Array([value, 0]), 7 * 2 ** 40 + 4);
    cmd(0);
    const pdev = vdevOf(v).pdev;
    assert.equal(pdev.command() & 2, 0);
    assert.equal(setIrqs(v, uapi.VFIO_PCI_MSIX_IRQ_INDEX, TRIGGER_EVENTFD, 0, 1, [v.p.eventfd()]), 0);
    assert.equal(pdev.command() & 2, 0, 'COMMAND.MEMORY restored');
    assert.ok(!vdevOf(v).memoryEnabled(), 'VFIO\'s virtual COMMAND untouched');
  });

  test('closing the device disables MSI-X (vfio_pci_core_disable)', () => {
    const v = bringUp();
    const irqs = vdevOf(v).irqs;
    assert.equal(setIrqs(v, uapi.VFIO_PCI_MSIX_IRQ_INDEX, TRIGGER_EVENTFD, 0, 1, [v.p.eventfd()]), 0);
    assert.equal(setIrqs(v, uapi.VFIO_PCI_REQ_IRQ_INDEX, TRIGGER_EVENTFD, 0, 1, [v.p.eventfd()]), 0);
    assert.ok(irqs.req_trigger);
    v.p.close(v.dev);
    assert.deepEqual([irqs.irq_type, irqs.allocated.size, irqs.trigger.size, irqs.req_trigger], [uapi.VFIO_PCI_NUM_IRQS, 0, 0, null]);
  });

  test('ivshmem-plain (no MSI-X, no interrupt pin, not PCIe) has no vectors to set but REQ', () => {
    const sim = createKernel({ devices: [{ name: 'shm', profile: 'ivshmem' }] });
    const p = sim.spawn();
    const v = { sim, p, dev: p.open('/dev/vfio/devices/shm'), ictx: -1 };
    const efd = p.eventfd();
    assert.equal(setIrqs(v, uapi.VFIO_PCI_MSIX_IRQ_INDEX, TRIGGER_EVENTFD, 0, 1, [efd]), 'EINVAL');
    assert.equal(setIrqs(v, uapi.VFIO_PCI_INTX_IRQ_INDEX, TRIGGER_EVENTFD, 0, 1, [efd]), 'EINVAL', 'no pin: count 0 fails validation before INTx');
    assert.equal(setIrqs(v, uapi.VFIO_PCI_ERR_IRQ_INDEX, TRIGGER_EVENTFD, 0, 1, [efd]), 'EINVAL', 'ERR is PCIe only');
    assert.equal(setIrqs(v, uapi.VFIO_PCI_REQ_IRQ_INDEX, TRIGGER_EVENTFD, 0, 1, [efd]), 0);
    assert.equal(vdevOf({ ...v, sim } as Vmm, 'shm').irqs.req_trigger?.count, 0n);
    assert.equal(setIrqs(v, uapi.VFIO_PCI_REQ_IRQ_INDEX, TRIGGER_NONE, 0, 1), 0, 'loopback');
    assert.equal(vdevOf({ ...v, sim } as Vmm, 'shm').irqs.req_trigger?.count, 1n);
  });
});
