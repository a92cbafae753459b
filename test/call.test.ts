// Trace lines a reviewer reads without the YAML: each step names its call and key arguments.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseScenario } from '../src/scenario/loader.ts';
import { runScenario, formatTrace } from '../src/scenario/report.ts';

const SCN = `
name: call-text
devices: [{ name: gpu0, profile: h100 }]
threads:
  main:
    - open: { path: /dev/vfio/devices/gpu0, as: dev }
    - ioctl: { fd: dev, op: VFIO_DEVICE_FEATURE, flags: [get], feature: DMA_BUF, region_index: 2, ranges: [{ offset: 0x2000, length: 4KiB }], as: buf }
    - ioctl: { fd: dev, op: VFIO_DEVICE_FEATURE, flags: [get], feature: DMA_BUF, region_index: 0, ranges: [{ offset: 16MiB - 4KiB, length: 4KiB }], expect: { errno: EINVAL } }
    - mmap: { fd: dev, offset: 0, length: 2MiB, as: m }
    - config_write: { fd: dev, reg: COMMAND, value: 0 }
    - load: { addr: m, offset: 4096, width: 8, expect: { ok: true } }
    - config_read: { fd: dev, reg: 0x44, width: 2 }
    - ioctl: { fd: dev, op: VFIO_DEVICE_FEATURE, flags: [set], feature: DMA_BUF_REVOKE, dmabuf_fd: buf }
`;

test('each step says its call: ioctl name and key arguments, config register and value, the address', () => {
  const scn = parseScenario(SCN, 'call.yaml');
  const { result } = runScenario(scn, { kernel: 'series-v8' });
  assert.deepEqual(result.steps.map((s) => s.call), [
    'open /dev/vfio/devices/gpu0 as dev',
    'ioctl dev VFIO_DEVICE_FEATURE GET DMA_BUF region 2 [8KiB+4KiB] as buf',
    'ioctl dev VFIO_DEVICE_FEATURE GET DMA_BUF region 0 [(16MiB-4KiB)+4KiB]',
    'mmap dev offset 0 length 2MiB as m',
    'config_write dev COMMAND = 0',
    'load m+4KiB u64',
    'config_read dev @0x44 u16',
    'ioctl dev VFIO_DEVICE_FEATURE SET DMA_BUF_REVOKE dmabuf_fd buf',
  ]);
  // the trace prints them, and a failed expectation names the file and line of its step
  const text = formatTrace(scn, result);
  assert.match(text, /main +2 +ioctl dev VFIO_DEVICE_FEATURE GET DMA_BUF region 0 \[\(16MiB-4KiB\)\+4KiB\] +ok \d/);
  assert.match(text, /EXPECTATION FAILED \(call\.yaml:8\): expected errno EINVAL, got ok/);
  assert.match(text, /EXPECTATION FAILED \(call\.yaml:11\): expected ok, got SIGBUS/);
});

test('an ioctl Linux has and the model does not says so: ENOTTY with "not modelled", never silently', () => {
  const scn = parseScenario(`name: nm
devices: [{ name: gpu0, profile: h100 }]
threads:
  main:
    - open: { path: /dev/vfio/vfio }
    - open: { path: /dev/vfio/12 }
    - open: { path: /dev/vfio/devices/gpu0, as: dev }
    - ioctl: { fd: dev, op: VFIO_DEVICE_IOEVENTFD }
    - eventfd: { as: efd }
    - ioctl: { fd: dev, op: VFIO_DEVICE_SET_IRQS, index: 0, flags: [data_eventfd, action_trigger], data: [efd] }
    - ioctl: { fd: dev, op: 0x3b99 }
    - ioctl: { fd: dev, op: VFIO_DEVICE_GET_INFO }
    - ioctl: { fd: dev, op: VFIO_DEVICE_SET_IRQS, index: 2, flags: [data_eventfd, action_trigger], data: [efd] }
    - ioctl: { fd: dev, op: VFIO_DEVICE_BIND_IOMMUFD, iommufd: efd }
`, 'nm.yaml');
  const { result } = runScenario(scn, { kernel: 'series-v8' });
  const [vfio, group, , ioeventfd, , intx, unknown, info, msix, bind] = result.steps;
  // the legacy container is modelled (container.ts); group 12 does not exist (one group per device,
  // numbered from 0): a plain ENOENT, as Linux gives for a node that is not there
  assert.deepEqual(vfio.result, { ok: true, value: 3 });
  assert.deepEqual([group.result, group.detail], [{ errno: 'ENOENT' }, undefined]);
  for (const [s, name] of [[ioeventfd, 'VFIO_DEVICE_IOEVENTFD'], [intx, 'VFIO_DEVICE_SET_IRQS of INTx']] as const) {
    assert.deepEqual(s.result, { errno: 'ENOTTY' });
    assert.equal(s.detail, `${name}: not modelled (Linux implements it; the model answers ENOTTY)`);
  }
  // what is modelled answers as Linux does, without the note: MSI-X is enabled, and a device opened
  // by name (the group path) refuses the cdev's bind with EINVAL
  assert.deepEqual(msix.result, { ok: true, value: 0, out: { argsz: 24, flags: 36, index: 2, start: 0, count: 1 } });
  assert.deepEqual([bind.result, bind.detail], [{ errno: 'EINVAL' }, undefined]);
  // an ioctl Linux does not have either is a plain ENOTTY; a modelled one is not marked
  assert.deepEqual([unknown.result, unknown.detail], [{ errno: 'ENOTTY' }, undefined]);
  assert.ok(!(info.detail ?? '').includes('not modelled'));
  assert.match(formatTrace(scn, result), /VFIO_DEVICE_SET_IRQS .*index 0 .*errno ENOTTY +VFIO_DEVICE_SET_IRQS of INTx: not modelled/);
});
