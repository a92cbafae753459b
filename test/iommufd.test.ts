// DMABUF importers: the dma-buf core's attach/map API with VFIO's kref path (vfio_pci_dma_buf_map(),
// vfio_pci_dma_buf_set_status()), iommufd MAP_FILE of a VFIO DMABUF with revocation and no remap
// (drivers/iommu/iommufd/pages.c, vfio_pci_dma_buf_iommufd_map()), peer DMA through the IOMMU, and the iommu-revoked / decode-enabled invariants.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createKernel, encode, decode, uapi, type SimKernel, type SimProcess } from '../src/index.ts';
import { parseScenario } from '../src/scenario/loader.ts';
import { runScenario } from '../src/scenario/report.ts';
import { exploreDpor } from '../src/explore/explorer.ts';
import { sys_iommufd_open } from '../src/kernel/iommufd/iommufd.ts';
import { iopt_map_file, peer_dma, type Ioas, type IoptPages } from '../src/kernel/iommufd/io_pagetable.ts';
import { importer_attach, importer_detach, importer_map, importer_unmap, importerAttachments } from '../src/kernel/dma-buf/importer.ts';
import { dma_buf_dynamic_attach, dma_buf_detach, type DmaBuf } from '../src/kernel/dma-buf/dma-buf.ts';
import { get_file } from '../src/kernel/fs/file.ts';
import { Status, VfioPciDmaBuf } from '../src/kernel/vfio/pci/dmabuf.ts';
import { sys_ioctl } from '../src/kernel/syscalls.ts';
import * as I from '../src/uapi/iommufd.ts';
import { errnoName } from '../src/uapi/errno.ts';
import type { KGen } from '../src/kernel/sched/sched.ts';

const MiB = 2 ** 20;
const invariantsBroken = (sim: SimKernel) => [...new Set(sim.violations.map((v) => v.invariant))].sort();

// ---- helpers over the TypeScript API ----

interface Env {
  sim: SimKernel;
  p: SimProcess;
  dev: number;
}
function env(config?: Record<string, string>, kernel?: string): Env {
  const sim = createKernel({ devices: [{ name: 'gpu0', profile: 'h100' }], config, kernel });
  const p = sim.spawn();
  return { sim, p, dev: p.open('/dev/vfio/devices/gpu0') };
}
function exportBuf(e: Env, bar: number, ranges: Array<[number, number]>): number {
  const hdr = uapi.vfio_device_feature.size, body = uapi.vfio_device_feature_dma_buf.size, rs = uapi.vfio_region_dma_range.size;
  const buf = new Uint8Array(hdr + body + ranges.length * rs);
  buf.set(encode(uapi.vfio_device_feature, { argsz: buf.length, flags: uapi.VFIO_DEVICE_FEATURE_GET | uapi.FEATURES.DMA_BUF }), 0);
  buf.set(encode(uapi.vfio_device_feature_dma_buf, { region_index: bar, open_flags: 0o2000002, nr_ranges: ranges.length }), hdr);
  ranges.forEach(([offset, length], i) => buf.set(encode(uapi.vfio_region_dma_range, { offset: BigInt(offset), length: BigInt(length) }), hdr + body + i * rs));
  return e.p.ioctl(e.dev, uapi.IOCTLS.VFIO_DEVICE_FEATURE, buf);
}
function revoke(e: Env, fd: number): number {
  const hdr = uapi.vfio_device_feature.size;
  const buf = new Uint8Array(hdr + 4);
  buf.set(encode(uapi.vfio_device_feature, { argsz: buf.length, flags: uapi.VFIO_DEVICE_FEATURE_SET | uapi.FEATURES.DMA_BUF_REVOKE }), 0);
  buf.set(encode(uapi.vfio_device_feature_dma_buf_revoke, { dmabuf_fd: fd }), hdr);
  return e.p.ioctl(e.dev, uapi.IOCTLS.VFIO_DEVICE_FEATURE, buf);
}
function command(e: Env, value: number): void {
  const b = new Uint8Array([value & 0xff, value >> 8]);
  assert.equal(e.p.pwrite(e.dev, b, 7 * 2 ** 40 + 4), 2);
}
/** Run a kernel path to completion in the process (it must not block). */
function run<T>(e: Env, gen: KGen<T>): T {
  return e.sim.run(e.p.proc, 'test', gen);
}
function iommufdOpen(e: Env): number {
  return run(e, sys_iommufd_open(e.sim.k, e.p.proc));
}
function ioctl(e: Env, fd: number, cmd: number, arg: Uint8Array): number | string {
  const r = run(e, sys_ioctl(e.sim.k, e.p.proc, fd, cmd, arg));
  return r < 0 ? errnoName(r) : r;
}
function ioasAlloc(e: Env, ictx: number): number {
  const arg = encode(I.iommu_ioas_alloc, { size: I.iommu_ioas_alloc.size });
  assert.equal(ioctl(e, ictx, I.IOMMU_IOAS_ALLOC, arg), 0);
  return Number(decode(I.iommu_ioas_alloc, arg).out_ioas_id);
}
function mapFile(e: Env, ictx: number, ioas: number, fd: number, length: number, o: { start?: number; iova?: number; flags?: number } = {}): number | string {
  const flags = o.flags ?? (I.IOMMU_IOAS_MAP_READABLE | I.IOMMU_IOAS_MAP_WRITEABLE | (o.iova !== undefined ? I.IOMMU_IOAS_MAP_FIXED_IOVA : 0));
  const arg = encode(I.iommu_ioas_map_file, { size: I.iommu_ioas_map_file.size, flags, ioas_id: ioas, fd, start: BigInt(o.start ?? 0), length: BigInt(length), iova: BigInt(o.iova ?? 0) });
  const r = ioctl(e, ictx, I.IOMMU_IOAS_MAP_FILE, arg);
  return r === 0 ? Number(decode(I.iommu_ioas_map_file, arg).iova as bigint) : r;
}
function unmap(e: Env, ictx: number, ioas: number, iova: number, length: number | bigint): number | string {
  const arg = encode(I.iommu_ioas_unmap, { size: I.iommu_ioas_unmap.size, ioas_id: ioas, iova: BigInt(iova), length: BigInt(length) });
  const r = ioctl(e, ictx, I.IOMMU_IOAS_UNMAP, arg);
  return r === 0 ? Number(decode(I.iommu_ioas_unmap, arg).length as bigint) : r;
}
function ioasOf(e: Env, id: number): Ioas {
  const ctx = [...e.sim.k.iommufds][0];
  return ctx.ioas().find((i) => i.id === id)!;
}
function dma(e: Env, ioas: Ioas, iova: number, write = false, value = 0n): bigint | string {
  const r = run(e, peer_dma(e.sim.k, ioas, iova, 8, write, value));
  return 'fault' in r ? r.fault : r.value;
}
function privOf(e: Env, fd: number): VfioPciDmaBuf {
  return (e.p.proc.files.fds.get(fd)!.file.private_data as DmaBuf).priv as VfioPciDmaBuf;
}

describe('uAPI: <linux/iommufd.h>', () => {
  test('struct iommu_ioas_map_file: size 40, fields at 0/4/8/12/16/24/32 (include/uapi/linux/iommufd.h)', () => {
    assert.equal(I.iommu_ioas_map_file.size, 40);
    assert.deepEqual(I.iommu_ioas_map_file.fields.map((f) => [f.name, f.offset]), [['size', 0], ['flags', 4], ['ioas_id', 8], ['fd', 12], ['start', 16], ['length', 24], ['iova', 32]]);
    assert.equal(I.iommu_ioas_unmap.size, 24);
    assert.equal(I.iommu_ioas_alloc.size, 12);
  });
  test('ioctl numbers: _IO(";", 0x80 + n), MAP_FILE is 0x8f', () => {
    assert.equal(I.IOMMU_IOAS_MAP_FILE, 0x3b8f);
    assert.equal(I.IOMMU_IOAS_ALLOC, 0x3b81);
    assert.equal(I.IOMMU_IOAS_UNMAP, 0x3b86);
    assert.deepEqual([I.IOMMU_IOAS_MAP_FIXED_IOVA, I.IOMMU_IOAS_MAP_WRITEABLE, I.IOMMU_IOAS_MAP_READABLE], [1, 2, 4]);
  });
});

describe('iommufd MAP_FILE of a VFIO DMABUF', () => {
  test('maps the buffer range at the returned IOVA; the peer reads what the CPU path wrote', () => {
    const e = env();
    const buf = exportBuf(e, 0, [[2 * MiB, 2 * MiB]]);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, 0xfeedfacecafebeefn, true);
    e.p.pwrite(e.dev, b, 2 * MiB + 0x18);
    const ictx = iommufdOpen(e), id = ioasAlloc(e, ictx);
    assert.equal(id, 1, 'object ids count from 1 per context');
    const iova = mapFile(e, ictx, id, buf, 2 * MiB);
    assert.equal(typeof iova, 'number');
    const ioas = ioasOf(e, id);
    assert.equal(dma(e, ioas, (iova as number) + 0x18), 0xfeedfacecafebeefn);
    const t = ioas.domain.maps[0];
    assert.equal(t.pa, e.sim.k.vfio.get('gpu0')!.pdev.bar(0)!.start + 2 * MiB);
    assert.equal(t.len, 2 * MiB);
    // iommufd attached dynamically with peer2peer, and took no kref (it never calls map_dma_buf)
    const priv = privOf(e, buf);
    assert.equal(priv.kref, 1);
    assert.equal(priv.dmabuf.attachments.length, 1);
    assert.equal(priv.dmabuf.attachments[0].peer2peer, true);
    assert.ok(priv.dmabuf.attachments[0].importer_ops?.invalidate_mappings);
    // the pages hold a file reference: fd + pages
    assert.equal(priv.dmabuf.file.refs, 2);
    assert.deepEqual(invariantsBroken(e.sim), []);
  });

  test('errnos: multi-range EOPNOTSUPP, revoked ENODEV, too long / unaligned / not a DMABUF EINVAL', () => {
    const e = env();
    const buf = exportBuf(e, 0, [[0, 2 * MiB]]);
    const two = exportBuf(e, 0, [[4 * MiB, 64 * 1024], [8 * MiB, 64 * 1024]]);
    const gone = exportBuf(e, 0, [[2 * MiB, 2 * MiB]]);
    const ictx = iommufdOpen(e), id = ioasAlloc(e, ictx);
    assert.equal(mapFile(e, ictx, id, two, 64 * 1024), 'EOPNOTSUPP');
    assert.equal(mapFile(e, ictx, id, buf, 2 * MiB + 4096), 'EINVAL');
    assert.equal(mapFile(e, ictx, id, buf, 2 * MiB, { start: 4096 }), 'EINVAL');
    assert.equal(mapFile(e, ictx, id, buf, MiB, { start: 0x800 }), 'EINVAL');
    assert.equal(mapFile(e, ictx, id, buf, MiB, { iova: 0x1800 }), 'EINVAL');
    assert.equal(mapFile(e, ictx, id, e.dev, MiB), 'EINVAL');
    assert.equal(mapFile(e, ictx, id, 77, MiB), 'EBADF');
    assert.equal(mapFile(e, ictx, 9, buf, MiB), 'ENOENT');
    assert.equal(mapFile(e, ictx, id, buf, MiB, { flags: 0 }), 'EINVAL');
    assert.equal(mapFile(e, ictx, id, buf, MiB, { flags: 0x10 | I.IOMMU_IOAS_MAP_READABLE }), 'EOPNOTSUPP');
    assert.equal(revoke(e, gone), 0);
    assert.equal(mapFile(e, ictx, id, gone, 2 * MiB), 'ENODEV');
    // the failed attempts left no attachment and no file reference behind
    for (const fd of [buf, two, gone]) {
      const priv = privOf(e, fd);
      assert.equal(priv.dmabuf.attachments.length, 0);
      assert.equal(priv.dmabuf.file.refs, 1);
    }
    assert.equal(unmap(e, ictx, id, 0, 4096), 'ENOENT');
    assert.equal(unmap(e, ictx, id, 0, 0), 'EINVAL');
    assert.deepEqual(invariantsBroken(e.sim), []);
  });

  test('revocation unmaps the IOVA and sets phys.len 0; un-revoke does not remap; unmap + map recovers', () => {
    const e = env();
    const buf = exportBuf(e, 0, [[0, 2 * MiB]]);
    const ictx = iommufdOpen(e), id = ioasAlloc(e, ictx);
    const iova = mapFile(e, ictx, id, buf, 2 * MiB, { iova: 0x4000_0000 }) as number;
    const ioas = ioasOf(e, id);
    assert.equal(dma(e, ioas, iova, true, 7n), 7n);
    command(e, 0);
    assert.equal(privOf(e, buf).status, Status.TEMP_REVOKED);
    assert.deepEqual(ioas.domain.maps, []);
    const area = ioas.areas[0];
    assert.equal((area.pages as IoptPages).phys.len, 0, 'the pages are marked revoked');
    assert.match(dma(e, ioas, iova) as string, /IOMMU fault at iova 0x40000000/);
    command(e, 2);
    assert.equal(privOf(e, buf).status, Status.OK);
    assert.deepEqual(ioas.domain.maps, [], 'no automatic remap');
    assert.equal(ioas.areas.length, 1, 'the area and its IOVA remain');
    assert.equal(mapFile(e, ictx, id, buf, 2 * MiB, { iova }), 'EEXIST');
    assert.equal(unmap(e, ictx, id, iova, 2 * MiB), 2 * MiB);
    assert.equal(privOf(e, buf).dmabuf.attachments.length, 0, 'unmapping the last area detaches');
    assert.equal(mapFile(e, ictx, id, buf, 2 * MiB, { iova }), iova);
    assert.equal(dma(e, ioas, iova), 7n);
    assert.deepEqual(invariantsBroken(e.sim), []);
  });

  test('closing the iommufd destroys the IOAS, detaches and drops the file: nothing leaks', () => {
    const e = env();
    const buf = exportBuf(e, 0, [[0, 2 * MiB]]);
    const ictx = iommufdOpen(e), id = ioasAlloc(e, ictx);
    mapFile(e, ictx, id, buf, 2 * MiB);
    mapFile(e, ictx, id, buf, MiB, { start: MiB });
    const priv = privOf(e, buf);
    assert.equal(priv.dmabuf.file.refs, 3);
    assert.equal(priv.dmabuf.attachments.length, 2, 'one attachment per MAP_FILE');
    e.p.close(ictx);
    assert.equal(e.sim.k.iommufds.size, 0);
    assert.equal(priv.dmabuf.attachments.length, 0);
    assert.equal(priv.dmabuf.file.refs, 1);
    e.p.close(buf);
    e.p.close(e.dev);
    e.sim.checkNoLeak();
    assert.deepEqual(invariantsBroken(e.sim), []);
  });

  test('without CONFIG_VFIO_PCI_DMABUF no .attach refuses (v4), but the private interconnect is missing: EOPNOTSUPP', () => {
    const e = env({ PCI_P2PDMA: 'n' }, 'series-v4');
    // a BAR mmap still makes a DMABUF (it has no fd); reach its file as a kernel caller would
    const va = e.p.mmap(0, 2 * MiB, 3, 1, e.dev, 0);
    assert.ok(va > 0);
    const dmabuf = [...e.sim.k.dmabufs][0];
    assert.equal(dmabuf.ops.attach, undefined);
    const ictx = iommufdOpen(e), id = ioasAlloc(e, ictx);
    const k = e.sim.k;
    const r = run(e, (function* () {
      const f = yield* get_file(k, dmabuf.file);
      return yield* iopt_map_file(k, ioasOf(e, id), f, 0, 2 * MiB, null, I.IOMMU_IOAS_MAP_READABLE);
    })());
    assert.equal(r < 0 && errnoName(r), 'EOPNOTSUPP');
    assert.equal(dmabuf.attachments.length, 0);
    // a static importer, however, is not refused by anyone in this configuration
    const a = run(e, dma_buf_dynamic_attach(k, dmabuf, 'static', null, null));
    assert.notEqual(typeof a, 'number');
    run(e, dma_buf_detach(k, a as Exclude<typeof a, number>));
    assert.deepEqual(invariantsBroken(e.sim), []);
  });

  test('without CONFIG_VFIO_PCI_DMABUF, from v6 the .attach that stays refuses every importer: EOPNOTSUPP', () => {
    for (const kernel of ['series-v6', 'series-v8']) {
      const e = env({ PCI_P2PDMA: 'n' }, kernel);
      assert.ok(e.p.mmap(0, 2 * MiB, 3, 1, e.dev, 0) > 0);
      const dmabuf = [...e.sim.k.dmabufs][0];
      assert.ok(dmabuf.ops.attach, kernel);
      const k = e.sim.k;
      const a = run(e, dma_buf_dynamic_attach(k, dmabuf, 'static', null, null));
      assert.equal(typeof a === 'number' && errnoName(a), 'EOPNOTSUPP', kernel);
      assert.equal(dmabuf.attachments.length, 0);
      assert.deepEqual(invariantsBroken(e.sim), []);
    }
  });
});

describe('generic importer: attach rules and the kref path', () => {
  test('static, non-p2p and non-revocable importers are EOPNOTSUPP; a revoked buffer ENODEV', () => {
    const e = env();
    const buf = exportBuf(e, 0, [[0, 2 * MiB]]);
    const k = e.sim.k, p = e.p.proc;
    const attach = (o: Partial<{ dynamic: boolean; peer2peer: boolean; revocable: boolean }>) => {
      const r = run(e, importer_attach(k, p, buf, { dynamic: true, peer2peer: true, revocable: true, ...o }));
      return r < 0 ? errnoName(r) : r;
    };
    assert.equal(attach({ dynamic: false }), 'EOPNOTSUPP');
    assert.equal(attach({ peer2peer: false }), 'EOPNOTSUPP');
    assert.equal(attach({ revocable: false }), 'EOPNOTSUPP');
    assert.equal(privOf(e, buf).dmabuf.file.refs, 1, 'refused attaches dropped their reference');
    const id = attach({});
    assert.equal(id, 1);
    assert.equal(revoke(e, buf), 0);
    assert.equal(attach({}), 'ENODEV');
    assert.equal(errnoName(run(e, importer_map(k, id as number))), 'ENODEV');
    assert.equal(run(e, importer_detach(k, id as number)), 0);
    assert.deepEqual(invariantsBroken(e.sim), []);
  });

  test('each mapping holds a kref; a revoker blocks until the importer unmaps, then re-arms', () => {
    const e = env();
    const buf = exportBuf(e, 0, [[0, 2 * MiB]]);
    const k = e.sim.k, p = e.p.proc;
    const id = run(e, importer_attach(k, p, buf, { dynamic: true, peer2peer: true, revocable: true }));
    const priv = privOf(e, buf);
    assert.equal(run(e, importer_map(k, id)), 1);
    assert.equal(run(e, importer_map(k, id)), 2);
    assert.equal(priv.kref, 3, 'base + two mappings');
    // the owner revokes in its own task: it runs until it waits on the completion
    const hdr = uapi.vfio_device_feature.size;
    const arg = new Uint8Array(hdr + 4);
    arg.set(encode(uapi.vfio_device_feature, { argsz: arg.length, flags: uapi.VFIO_DEVICE_FEATURE_SET | uapi.FEATURES.DMA_BUF_REVOKE }), 0);
    arg.set(encode(uapi.vfio_device_feature_dma_buf_revoke, { dmabuf_fd: buf }), hdr);
    let ret: number | null = null;
    const owner = k.spawn(p, 'owner', (function* () {
      ret = yield* sys_ioctl(k, p, e.dev, uapi.IOCTLS.VFIO_DEVICE_FEATURE, arg);
    })());
    while (!owner.blocked && !owner.done) k.sched.step(owner);
    assert.ok(owner.blocked, 'the revoker waits for the importer');
    assert.match(owner.pending.op, /wait_for_completion/);
    assert.equal(priv.status, Status.PERM_REVOKED);
    assert.equal(importerAttachments(k).get(id)!.invalidated, 1, 'the importer was told');
    assert.equal(priv.dmabuf.resv.isLocked(), false, 'the resv lock is not held across the wait');
    assert.equal(run(e, importer_unmap(k, id)), 1);
    assert.ok(owner.blocked, 'one mapping is still live');
    assert.equal(run(e, importer_unmap(k, id)), 1);
    assert.equal(owner.blocked, false, 'the last kref_put completed the revoker');
    while (!owner.done) k.sched.step(owner);
    assert.equal(ret, 0);
    assert.equal(priv.kref, 1, 're-armed after the drain');
    assert.equal(errnoName(run(e, importer_unmap(k, id))), 'EINVAL');
    assert.equal(run(e, importer_detach(k, id)), 0);
    assert.equal(priv.dmabuf.file.refs, 1);
    assert.deepEqual(invariantsBroken(e.sim), []);
  });

  test('an importer that never unmaps blocks the device close forever (no-deadlock): "might block userspace"', () => {
    const r = runScenario(parseScenario(`
name: importer-never-unmaps
devices: [{ name: gpu0, profile: h100 }]
threads:
  main:
    - open: { path: /dev/vfio/devices/gpu0, as: dev }
    - ioctl: { fd: dev, op: VFIO_DEVICE_FEATURE, flags: [get], feature: DMA_BUF, region_index: 0, ranges: [{ offset: 0, length: 2MiB }], as: buf }
    - dmabuf_attach: { fd: buf, as: a }
    - dmabuf_map: { attach: a }
    - close: { fd: dev }
`)).result;
    assert.deepEqual(r.violations.map((v) => v.invariant), ['no-deadlock']);
    assert.match(r.violations[0].message, /main waits at wait_for_completion dmabuf0\.comp/);
  });

  test('detach while mapped is EBUSY; an importer that never detaches leaks the buffer (no-leak)', () => {
    const r = runScenario(parseScenario(`
name: importer-leak
devices: [{ name: gpu0, profile: h100 }]
threads:
  main:
    - open: { path: /dev/vfio/devices/gpu0, as: dev }
    - ioctl: { fd: dev, op: VFIO_DEVICE_FEATURE, flags: [get], feature: DMA_BUF, region_index: 0, ranges: [{ offset: 0, length: 2MiB }], as: buf }
    - dmabuf_attach: { fd: buf, as: a }
    - dmabuf_map: { attach: a }
    - dmabuf_detach: { attach: a, expect: { errno: EBUSY } }
    - dmabuf_unmap: { attach: a, expect: { ok: true, value: 0 } }
    - close: { fd: buf }
    - close: { fd: dev }
`)).result;
    assert.deepEqual(r.problems.filter((x) => !x.startsWith('invariant no-leak')), []);
    const leaks = r.violations.filter((v) => v.invariant === 'no-leak').map((v) => v.message);
    assert.ok(leaks.some((m) => /importer1 never detached/.test(m)), leaks.join('\n'));
    assert.ok(leaks.some((m) => /dmabuf0 .* was never released/.test(m)), leaks.join('\n'));
  });
});

describe('scenario operations and results', () => {
  const SCN = `
name: dma-results
devices: [{ name: gpu0, profile: h100 }]
threads:
  main:
    - open: { path: /dev/vfio/devices/gpu0, as: dev }
    - ioctl: { fd: dev, op: VFIO_DEVICE_FEATURE, flags: [get], feature: DMA_BUF, region_index: 0, ranges: [{ offset: 0, length: 2MiB }], as: buf }
    - iommufd_open: { as: ictx }
    - ioas_alloc: { iommufd: ictx, as: ioas }
    - iommufd_map: { ioas: ioas, fd: buf, length: 2MiB, iova: 0x80000000, as: iova }
    - dma_write: { ioas: ioas, iova: iova, offset: 8, width: 8, value: 0x0123456789abcdef }
    - dma_read: { iommufd: ictx, iova: iova, offset: 8, width: 8 }
    - dma_read: { ioas: ioas, iova: iova, offset: 8, width: 2 }
    - config_write: { fd: dev, reg: COMMAND, value: 0 }
    - dma_read: { ioas: ioas, iova: iova, width: 4 }
    - dma_read: { ioas: 5, iova: iova, width: 4 }
    - iommufd_unmap: { ioas: ioas, iova: iova, length: 2MiB }
    - close: { fd: ictx }
    - close: { fd: buf }
    - close: { fd: dev }
`;
  test('results follow the JSON output of README "The command": u64 as hex, IOMMU fault as errno EIO with a detail', () => {
    const { result } = runScenario(parseScenario(SCN));
    assert.equal(result.exit, 0, result.problems.join('\n'));
    const s = result.steps;
    assert.deepEqual(s[2].result, { ok: true, value: 5 });
    assert.deepEqual(s[3].result, { ok: true, value: 1, out: { out_ioas_id: 1 } });
    assert.deepEqual(s[4].result, { ok: true, value: '0x80000000', out: { iova: '0x80000000' } });
    assert.deepEqual(s[5].result, { ok: true });
    assert.deepEqual(s[6].result, { ok: true, value: '0x123456789abcdef' });
    assert.deepEqual(s[7].result, { ok: true, value: 0xcdef });
    assert.deepEqual(s[9].result, { errno: 'EIO' });
    assert.match(s[9].detail!, /^IOMMU fault at iova 0x80000000/);
    assert.deepEqual(s[10].result, { errno: 'ENOENT' });
    assert.deepEqual(s[11].result, { ok: true, value: '0x200000', out: { length: '0x200000' } });
    assert.deepEqual(result.violations, []);
  });

  test('a DMA through a live translation to a BAR whose decode was turned off behind VFIO (setpci) breaks decode-enabled', () => {
    const { result } = runScenario(parseScenario(`
name: dma-decode-off
devices: [{ name: gpu0, profile: h100 }]
setup:
  - open: { path: /dev/vfio/devices/gpu0, as: dev }
  - ioctl: { fd: dev, op: VFIO_DEVICE_FEATURE, flags: [get], feature: DMA_BUF, region_index: 0, ranges: [{ offset: 0, length: 2MiB }], as: buf }
  - iommufd_open: { as: ictx }
  - ioas_alloc: { iommufd: ictx, as: ioas }
  - iommufd_map: { ioas: ioas, fd: buf, length: 2MiB, as: iova }
threads:
  main:
    - config_write: { device: gpu0, reg: COMMAND, value: 0 }
    - dma_read: { ioas: ioas, iova: iova, width: 4, expect: { value: 0xffffffff } }
`));
    assert.deepEqual(result.violations.map((v) => v.invariant), ['decode-enabled']);
    assert.match(result.violations[0].message, /peer DMA read from .* iova 0x0 reached gpu0 BAR0/);
  });

  test('boolean importer options are accepted by the loader', () => {
    const scn = parseScenario(`
name: b
devices: [{ name: gpu0, profile: h100 }]
threads:
  main:
    - open: { path: /dev/vfio/devices/gpu0, as: dev }
    - ioctl: { fd: dev, op: VFIO_DEVICE_FEATURE, flags: [get], feature: DMA_BUF, region_index: 0, ranges: [{ offset: 0, length: 2MiB }], as: buf }
    - dmabuf_attach: { fd: buf, dynamic: true, peer2peer: true, revocable: false, expect: { errno: EOPNOTSUPP } }
    - close: { fd: buf }
    - close: { fd: dev }
`);
    assert.equal(runScenario(scn).result.exit, 0);
    assert.throws(() => parseScenario(`
name: b
devices: [{ name: gpu0, profile: h100 }]
threads:
  main:
    - dma_read: { iova: 0, width: 4 }
`), /give ioas/);
  });
});

describe('invariants catch broken importers (exhaustive exploration)', () => {
  const race = (threads: string, setup = '') => parseScenario(`
name: r
devices: [{ name: gpu0, profile: h100 }]
setup:
  - open: { path: /dev/vfio/devices/gpu0, as: dev }
  - ioctl: { fd: dev, op: VFIO_DEVICE_FEATURE, flags: [get], feature: DMA_BUF, region_index: 0, ranges: [{ offset: 0, length: 2MiB }], as: buf }
${setup}
threads:
${threads}
`);
  const IOMMU_SETUP = `  - iommufd_open: { as: ictx }
  - ioas_alloc: { iommufd: ictx, as: ioas }`;
  const MAP_VS_REVOKE = race(`  vmm:
    - iommufd_map: { ioas: ioas, fd: buf, length: 2MiB, iova: 1GiB }
    - dma_read: { ioas: ioas, iova: 1GiB, width: 4 }
  owner:
    - ioctl: { fd: dev, op: VFIO_DEVICE_FEATURE, flags: [set], feature: DMA_BUF_REVOKE, dmabuf_fd: buf, expect: { ok: true } }`, IOMMU_SETUP);
  const IMPORTER = race(`  owner:
    - ioctl: { fd: dev, op: VFIO_DEVICE_FEATURE, flags: [set], feature: DMA_BUF_REVOKE, dmabuf_fd: buf, expect: { ok: true } }
  importer:
    - dmabuf_unmap: { attach: imp, expect: { ok: true } }
    - dmabuf_detach: { attach: imp, expect: { ok: true } }`, `  - dmabuf_attach: { fd: buf, as: imp }
  - dmabuf_map: { attach: imp }`);

  test('the faithful model passes every interleaving', () => {
    for (const scn of [MAP_VS_REVOKE, IMPORTER]) {
      const r = exploreDpor(scn);
      assert.ok(r.complete);
      assert.equal(r.counterexample, null, r.counterexample?.message);
      assert.ok(r.executions > 1);
    }
  });
  test('a revoke callback that leaves the translations: iommu-revoked', () => {
    const r = exploreDpor(MAP_VS_REVOKE, { mutant: 'iommufd-revoke-no-unmap' });
    assert.equal(r.counterexample?.invariant, 'iommu-revoked');
  });
  test('filling the domain without re-checking revoked pages (the window after the resv lock): iommu-revoked', () => {
    const r = exploreDpor(MAP_VS_REVOKE, { mutant: 'iommufd-fill-ignores-revoke' });
    assert.equal(r.counterexample?.invariant, 'iommu-revoked');
    assert.ok(r.counterexample!.preemptions >= 1, 'only an interleaving finds it');
  });
  test('map_dma_buf without a kref: the revoker does not wait, the mapping outlives the revoke', () => {
    const r = exploreDpor(IMPORTER, { mutant: 'importer-map-no-kref' });
    assert.equal(r.counterexample?.invariant, 'iommu-revoked');
    assert.match(r.counterexample!.message, /importer1 still holds 1 mapping/);
  });
});
