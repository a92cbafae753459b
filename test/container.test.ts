// The legacy container and group path (drivers/vfio/container.c, group.c, vfio_iommu_type1.c):
// the bundled scenarios' results and findings, and the same calls as raw ioctls through the
// TypeScript API, with the state they leave (container, IOMMU, mappings, group file references) and
// the exclusion between the group, the device cdev and the model's open by name.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createKernel, decode, encode, uapi, SyscallError, type SimProcess } from '../src/index.ts';
import { loadScenarioFile } from '../src/scenario/loader.ts';
import { runScenario } from '../src/scenario/report.ts';
import { VfioIommu } from '../src/kernel/vfio/vfio_iommu_type1.ts';

const MiB = 2 ** 20;
const PROT_RW = 3, MAP_SHARED = 1, MAP_PRIVATE_ANON = 0x22;
const BAR2 = 2 * 2 ** 40;
const { VFIO_GET_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU, VFIO_GROUP_GET_STATUS, VFIO_GROUP_SET_CONTAINER, VFIO_GROUP_UNSET_CONTAINER, VFIO_GROUP_GET_DEVICE_FD } = uapi.IOCTLS;
const { VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_DIRTY_PAGES } = uapi.CONTAINER_IOCTLS;

function ioctl(p: SimProcess, fd: number, cmd: number, arg?: Uint8Array | number | string): number | string {
  try {
    return p.ioctl(fd, cmd, arg);
  } catch (e) {
    if (e instanceof SyscallError) return e.errno;
    throw e;
  }
}
const int = (v: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, v, true);
  return b;
};
const status = (p: SimProcess, g: number) => {
  const arg = encode(uapi.vfio_group_status, { argsz: 8 });
  const r = ioctl(p, g, VFIO_GROUP_GET_STATUS, arg);
  return r === 0 ? Number(decode(uapi.vfio_group_status, arg).flags) : r;
};
const mapDma = (p: SimProcess, c: number, vaddr: number, iova: number, size: number, flags = uapi.VFIO_DMA_MAP_FLAG_READ | uapi.VFIO_DMA_MAP_FLAG_WRITE, argsz = 32) =>
  ioctl(p, c, VFIO_IOMMU_MAP_DMA, encode(uapi.vfio_iommu_type1_dma_map, { argsz, flags, vaddr: BigInt(vaddr), iova: BigInt(iova), size: BigInt(size) }));
function unmapDma(p: SimProcess, c: number, iova: number, size: number, flags = 0): number | string {
  const arg = encode(uapi.vfio_iommu_type1_dma_unmap, { argsz: 24, flags, iova: BigInt(iova), size: BigInt(size) });
  const r = ioctl(p, c, VFIO_IOMMU_UNMAP_DMA, arg);
  return r === 0 ? Number(decode(uapi.vfio_iommu_type1_dma_unmap, arg).size) : r;
}

/** A container with the first device's group in it and TYPE1v2 set, and the device's fd. */
function bringUp(devices = [{ name: 'gpu0', profile: 'h100' }]) {
  const sim = createKernel({ devices, kernel: 'v7.1' });
  const p = sim.spawn();
  const c = p.open('/dev/vfio/vfio');
  const g = p.open('/dev/vfio/0');
  assert.equal(ioctl(p, g, VFIO_GROUP_SET_CONTAINER, int(c)), 0);
  assert.equal(ioctl(p, c, VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU), 0);
  const dev = ioctl(p, g, VFIO_GROUP_GET_DEVICE_FD, sim.k.vfio.get('gpu0')!.pdev.desc.bdf) as number;
  assert.equal(typeof dev, 'number');
  return { sim, p, c, g, dev };
}
const iommuOf = (sim: ReturnType<typeof createKernel>) => [...sim.k.vfioContainers][0].iommu_data as VfioIommu;

describe('the container and the group through the API', () => {
  test('wrong orders get Linux\'s errnos (container.c, group.c)', () => {
    const sim = createKernel({ devices: [{ name: 'gpu0', profile: 'h100' }, { name: 'nic0', profile: 'nic' }], kernel: 'v7.1' });
    const p = sim.spawn();
    const c = p.open('/dev/vfio/vfio');
    assert.equal(ioctl(p, c, VFIO_GET_API_VERSION), uapi.VFIO_API_VERSION);
    assert.deepEqual([uapi.VFIO_TYPE1_IOMMU, uapi.VFIO_TYPE1v2_IOMMU, uapi.VFIO_UNMAP_ALL, uapi.VFIO_DMA_CC_IOMMU, uapi.VFIO_NOIOMMU_IOMMU, uapi.VFIO_SPAPR_TCE_IOMMU].map((e) => ioctl(p, c, VFIO_CHECK_EXTENSION, e)), [1, 1, 1, 0, 0, 0]);
    assert.equal(ioctl(p, c, VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU), 'EINVAL', 'no group in the container');
    assert.equal(mapDma(p, c, 0, 0, 4096), 'EINVAL', 'no IOMMU driver: every other ioctl is EINVAL');
    const g = p.open('/dev/vfio/0');
    assert.throws(() => p.open('/dev/vfio/0'), (e: unknown) => e instanceof SyscallError && e.errno === 'EBUSY');
    assert.throws(() => p.open('/dev/vfio/2'), (e: unknown) => e instanceof SyscallError && e.errno === 'ENOENT');
    assert.equal(status(p, g), uapi.VFIO_GROUP_FLAGS_VIABLE);
    assert.equal(ioctl(p, g, VFIO_GROUP_GET_STATUS, encode(uapi.vfio_group_status, { argsz: 4 })), 'EINVAL');
    assert.equal(ioctl(p, g, VFIO_GROUP_GET_DEVICE_FD, '0000:3b:00.0'), 'EINVAL', 'no container');
    assert.equal(ioctl(p, g, VFIO_GROUP_UNSET_CONTAINER), 'EINVAL');
    assert.equal(ioctl(p, g, VFIO_GROUP_SET_CONTAINER, int(99)), 'EBADF');
    const efd = p.eventfd();
    assert.equal(ioctl(p, g, VFIO_GROUP_SET_CONTAINER, int(efd)), 'EBADFD');
    assert.equal(ioctl(p, g, VFIO_GROUP_SET_CONTAINER, int(c)), 0);
    assert.equal(ioctl(p, g, VFIO_GROUP_SET_CONTAINER, int(c)), 'EINVAL', 'a container already');
    assert.equal(ioctl(p, g, VFIO_GROUP_GET_DEVICE_FD, '0000:3b:00.0'), 'EINVAL', 'the container has no IOMMU');
    assert.equal(ioctl(p, c, VFIO_SET_IOMMU, 42), 'ENODEV', 'no driver supports the type');
    assert.equal(ioctl(p, c, VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU), 0);
    assert.equal(ioctl(p, c, VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU), 'EINVAL', 'set already');
    assert.equal(ioctl(p, c, VFIO_CHECK_EXTENSION, uapi.VFIO_DMA_CC_IOMMU), 1, 'asked of the driver set');
    assert.equal(status(p, g), uapi.VFIO_GROUP_FLAGS_VIABLE | uapi.VFIO_GROUP_FLAGS_CONTAINER_SET);
    assert.equal(ioctl(p, g, VFIO_GROUP_GET_DEVICE_FD, '0000:18:00.0'), 'ENODEV', 'the NIC is in group 1');
    assert.equal(ioctl(p, g, VFIO_GROUP_GET_DEVICE_FD, new Uint8Array([0x30, 0x30])), 'EFAULT', 'a name that runs past the buffer');
    const dev = ioctl(p, g, VFIO_GROUP_GET_DEVICE_FD, '0000:3b:00.0') as number;
    assert.ok(dev > 0);
    assert.equal(p.proc.files.fds.get(dev)!.cloexec, true, 'the device fd is O_CLOEXEC');
    assert.equal(ioctl(p, g, VFIO_GROUP_UNSET_CONTAINER), 'EBUSY', 'the device is open');
    assert.equal(ioctl(p, c, VFIO_IOMMU_DIRTY_PAGES, new Uint8Array(16)), 'ENOTTY');
    p.close(dev);
    assert.equal(ioctl(p, g, VFIO_GROUP_UNSET_CONTAINER), 0);
    assert.equal(sim.k.vfioContainers.size, 1, 'the container file keeps it');
    assert.equal([...sim.k.vfioContainers][0].iommu_driver, null, 'the last group took the IOMMU with it');
    p.close(g);
    p.close(c);
    p.close(efd);
    assert.equal(sim.k.vfioContainers.size, 0);
    assert.deepEqual(sim.violations, []);
  });

  test('a device file holds the group file and the container: closing both fds keeps the mappings until the device closes', () => {
    const { sim, p, c, g, dev } = bringUp();
    const ram = p.mmap(0, 2 * MiB, PROT_RW, MAP_PRIVATE_ANON, -1, 0);
    assert.equal(mapDma(p, c, ram, 0, 2 * MiB), 0);
    const group = sim.k.vfioGroups[0];
    const gfile = group.opened_file!;
    assert.equal(gfile.refs, 2, 'the fd and the open device');
    p.close(g);
    p.close(c);
    assert.equal(group.opened_file, gfile, 'the group file is not released while the device is open');
    assert.equal(iommuOf(sim).dma_list.length, 1, 'the container and its mapping live on');
    p.close(dev);
    assert.equal(group.opened_file, null);
    assert.equal(sim.k.vfioContainers.size, 0, 'released with the group');
    assert.equal(group.domain, null);
    p.munmap(ram, 2 * MiB);
    assert.deepEqual(sim.violations, []);
  });

  test('the group, the device cdev and the open by name exclude each other', () => {
    const sim = createKernel({ devices: [{ name: 'gpu0', profile: 'h100' }], kernel: 'v7.1' });
    const p = sim.spawn();
    const g = p.open('/dev/vfio/0');
    assert.throws(() => p.open('/dev/vfio/devices/gpu0'), (e: unknown) => e instanceof SyscallError && e.errno === 'EBUSY');
    const cdev = p.open('/dev/vfio/devices/vfio0');
    const ictx = p.open('/dev/iommu');
    const bind = encode(uapi.vfio_device_bind_iommufd, { argsz: 16, iommufd: ictx });
    assert.equal(ioctl(p, cdev, uapi.IOCTLS.VFIO_DEVICE_BIND_IOMMUFD, bind), 'EBUSY', 'vfio_device_block_group');
    p.close(g);
    assert.equal(ioctl(p, cdev, uapi.IOCTLS.VFIO_DEVICE_BIND_IOMMUFD, bind), 0);
    assert.throws(() => p.open('/dev/vfio/0'), (e: unknown) => e instanceof SyscallError && e.errno === 'EBUSY');
    p.close(cdev);
    const named = p.open('/dev/vfio/devices/gpu0');
    assert.throws(() => p.open('/dev/vfio/0'), (e: unknown) => e instanceof SyscallError && e.errno === 'EBUSY');
    p.close(named);
    p.close(p.open('/dev/vfio/0'));
    p.close(ictx);
    assert.deepEqual(sim.violations, []);
  });
});

describe('VFIO_IOMMU_MAP_DMA / UNMAP_DMA (vfio_iommu_type1.c)', () => {
  test('argument checks, overlaps and the v2 unmap rules', () => {
    const { sim, p, c, dev } = bringUp();
    const ram = p.mmap(0, 4 * MiB, PROT_RW, MAP_PRIVATE_ANON, -1, 0);
    assert.equal(mapDma(p, c, ram, 0, 2 * MiB, uapi.VFIO_DMA_MAP_FLAG_READ, 16), 'EINVAL', 'argsz below 32');
    assert.equal(mapDma(p, c, ram, 0, 2 * MiB, 8), 'EINVAL', 'unknown flag');
    assert.equal(mapDma(p, c, ram, 0, 2 * MiB, 0), 'EINVAL', 'neither READ nor WRITE');
    assert.equal(mapDma(p, c, ram, 0, 0), 'EINVAL', 'size 0');
    assert.equal(mapDma(p, c, ram + 1, 0, 4096), 'EINVAL', 'unaligned vaddr');
    assert.equal(mapDma(p, c, ram, 0x800, 4096), 'EINVAL', 'unaligned iova');
    assert.equal(mapDma(p, c, ram, 0xfee00000, 4096), 'EINVAL', 'the MSI window is reserved');
    assert.equal(mapDma(p, c, ram, 2 ** 48, 4096), 'EINVAL', 'past the aperture');
    assert.equal(mapDma(p, c, 0x1000, 0, 4096), 'EFAULT', 'nothing mapped at the address');
    assert.equal(mapDma(p, c, ram, 0, 2 * MiB), 0);
    assert.equal(mapDma(p, c, ram, 0x100000, 2 * MiB), 'EEXIST');
    assert.equal(mapDma(p, c, ram + 2 * MiB, 2 * MiB, 2 * MiB), 0);
    assert.equal(iommuOf(sim).dma_list.length, 2);
    assert.equal(iommuOf(sim).dma_list[0].rsvd, 0, 'RAM is pinned, not reserved');
    assert.equal(unmapDma(p, c, 0x1000, 2 * MiB), 'EINVAL', 'starts inside a mapping');
    assert.equal(unmapDma(p, c, 0, 3 * MiB), 'EINVAL', 'ends inside a mapping');
    assert.equal(unmapDma(p, c, 0, 4095), 'EINVAL', 'not page-sized');
    assert.equal(unmapDma(p, c, 8 * MiB, 2 * MiB), 0, 'nothing there: 0 bytes, no error');
    assert.equal(unmapDma(p, c, 1, 0, uapi.VFIO_DMA_UNMAP_FLAG_ALL), 'EINVAL', 'ALL with an iova');
    assert.equal(unmapDma(p, c, 0, 0, uapi.VFIO_DMA_UNMAP_FLAG_ALL), 4 * MiB);
    assert.equal(iommuOf(sim).dma_list.length, 0);
    assert.deepEqual(iommuOf(sim).domain!.maps, []);
    p.close(dev);
    p.munmap(ram, 4 * MiB);
    assert.deepEqual(sim.violations, []);
  });

  test('a BAR mapping maps its raw PFNs; decode off makes a new MAP_DMA EFAULT and leaves the old translation (the finding)', () => {
    const { sim, p, c, dev } = bringUp();
    const bar = p.mmap(0, 4 * MiB, PROT_RW, MAP_SHARED, dev, BAR2);
    p.store(bar + 0x10, 4, 0xfeed);
    assert.equal(mapDma(p, c, bar, 0x8000000000, 2 * MiB), 0);
    const gpu = sim.k.vfio.get('gpu0')!;
    const dma = iommuOf(sim).dma_list[0];
    assert.equal(dma.rsvd, 512, 'device memory is not pinned (is_invalid_reserved_pfn)');
    const t = iommuOf(sim).domain!.lookup(0x8000000000 + 0x10, 4)!;
    assert.equal(t.pa + 0x10, gpu.pdev.bar(2)!.start + 0x10, 'the IOVA translates to BAR2');
    assert.deepEqual(sim.violations, []);
    p.pwrite(dev, new Uint8Array([0, 0]), 7 * 2 ** 40 + 4); // COMMAND = 0: memory decode off
    assert.equal(mapDma(p, c, bar + 2 * MiB, 0x8000200000, 2 * MiB), 'EFAULT', 'the fault-in SIGBUSes');
    assert.ok(iommuOf(sim).domain!.lookup(0x8000000000, 4), 'type1 keeps the old translation');
    const found = sim.violations as Array<{ invariant: string; message: string }>;
    assert.deepEqual(found.map((v) => v.invariant), ['decode-enabled']);
    assert.match(found[0].message, /type1-0\.domain iova 0x8000000000 -> gpu0 BAR2 \+ 0x0 .*raw PFN/);
    p.close(dev);
    p.munmap(bar, 4 * MiB);
  });

  test('VFIO_IOMMU_GET_INFO answers the size its capabilities need, then the chain at cap_offset 24', () => {
    const { sim, p, c, dev } = bringUp();
    const small = encode(uapi.vfio_iommu_type1_info, { argsz: 24 });
    assert.equal(ioctl(p, c, VFIO_IOMMU_GET_INFO, small), 0);
    const s = decode(uapi.vfio_iommu_type1_info, small);
    assert.deepEqual([s.argsz, s.flags, s.cap_offset], [120, uapi.VFIO_IOMMU_INFO_PGSIZES | uapi.VFIO_IOMMU_INFO_CAPS, 0]);
    assert.equal(s.iova_pgsizes, 0x40201000n);
    const big = encode(uapi.vfio_iommu_type1_info, { argsz: 120 }, 120);
    assert.equal(ioctl(p, c, VFIO_IOMMU_GET_INFO, big), 0);
    const dv = new DataView(big.buffer);
    const chain: number[] = [];
    for (let off = Number(decode(uapi.vfio_iommu_type1_info, big).cap_offset); off; off = dv.getUint32(off + 4, true)) chain.push(dv.getUint16(off, true));
    assert.deepEqual(chain, [uapi.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, uapi.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, uapi.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE]);
    assert.equal(dv.getUint32(72 + 8, true), 2, 'two IOVA ranges around the MSI window');
    assert.equal(dv.getBigUint64(72 + 24, true), 0xfedfffffn);
    p.close(dev);
    assert.deepEqual(sim.violations, []);
  });
});

describe('scenarios/vmm legacy container scenarios', () => {
  const run = (file: string, kernel?: string) => {
    const scn = loadScenarioFile(file);
    const { result } = runScenario(scn, { kernel });
    return { result, step: (i: number) => result.steps[i] };
  };
  test('legacy-container-bringup: QEMU\'s order, GET_INFO twice, the device\'s DMA through the container, UNMAP_ALL', () => {
    const { result, step } = run('scenarios/vmm/legacy-container-bringup.yaml', 'v7.1');
    assert.deepEqual([result.problems, result.violations], [[], []]);
    const out = (i: number) => (step(i).result as { out: Record<string, unknown> }).out;
    assert.deepEqual([out(1).flags, out(8).flags], [1, 3], 'VIABLE, then VIABLE | CONTAINER_SET');
    assert.deepEqual([out(9).argsz, out(9).cap_offset, out(10).cap_offset], [120, 0, 24]);
    assert.deepEqual(step(23).result, { ok: true, value: '0x1122334455667788' }, 'the device\'s DMA reached guest RAM');
    assert.deepEqual(step(24).result, { ok: true, value: 0x600df00d }, 'and read its own BAR2 through the type1 mapping');
    assert.equal(out(27).size, '0x4200000', 'UNMAP_ALL: 64 MiB of BAR + 2 MiB of RAM');
    assert.match(step(33).detail ?? '', /neither bound to an iommufd nor in a container/);
  });
  test('legacy-map-dma-bar-decode: EFAULT with decode off, and the DMA that still reaches the disabled BAR', () => {
    for (const kernel of ['v7.1', 'series-v8']) {
      const { result, step } = run('scenarios/vmm/legacy-map-dma-bar-decode.yaml', kernel);
      assert.deepEqual(result.problems, [], kernel);
      assert.deepEqual(result.violations.map((v) => v.invariant), ['decode-enabled', 'decode-enabled'], kernel);
      assert.deepEqual(step(18).result, { errno: 'EFAULT' });
      assert.deepEqual(step(23).result, { ok: true, value: 0xcafe0001 }, 'the write with decode off was dropped');
      assert.equal((step(26).result as { out: Record<string, unknown> }).out.size, '0x400000');
      assert.equal((step(28).result as { out: Record<string, unknown> }).out.size, '0x400000', 'container_unmap [all]: the two RAM mappings');
    }
    // series-v4 (not in the scenario's kernels): the zap-range finding leaves the CPU's PMD too
    const v4 = run('scenarios/vmm/legacy-map-dma-bar-decode.yaml', 'series-v4');
    assert.deepEqual(v4.step(17).result, { ok: true, value: 0xffffffff }, 'the load reaches the disabled BAR');
    assert.ok(v4.result.violations.some((v) => v.invariant === 'no-stale-pte'));
  });
  test('p2p-dma-into-peer-bar: the peer\'s write lands in the BAR; decode off and the permanent revoke take the IOVA away', () => {
    const { result, step } = run('scenarios/vmm/p2p-dma-into-peer-bar.yaml', 'series-v8');
    assert.deepEqual([result.problems, result.violations], [[], []]);
    assert.deepEqual((step(15).result as { out: Record<string, unknown> }).out, { data: 0xcafe0001 });
    assert.match(step(18).detail ?? '', /IOMMU fault at iova 0x8000000100 \(no translation\)/);
  });
});
