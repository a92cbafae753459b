// A generic DMABUF importer: the driver of a peer device (an RDMA NIC, say) that userspace asks to
// attach to a DMABUF fd, map it for the device's DMA, unmap and detach. It exercises the dma-buf
// core's importer API (drivers/dma-buf/dma-buf.c) and VFIO's map/unmap kref path
// (vfio_pci_dma_buf_map/unmap, vfio_pci_dma_buf_set_status()): every live mapping holds a kref, and
// a revoker waits in set_status until each is unmapped.
//
// A revocable importer's invalidate_mappings only records that it was told: the importer must then
// unmap from its own thread (the scenario's `dmabuf_unmap`), and until it does the revoker blocks
// ("This might block userspace, waiting on importers to detach": [PATCH v4 09/10] vfio/pci:
// Permanently revoke a DMABUF on request).
import type { Kernel } from '../kernel.ts';
import type { Process } from '../process.ts';
import { ev, type KGen } from '../sched/sched.ts';
import {
  dma_buf_detach, dma_buf_dynamic_attach, dma_buf_get, dma_buf_map_attachment, dma_buf_put, dma_buf_unmap_attachment,
  type DmaBuf, type DmaBufAttachOps, type DmaBufAttachment, type SgTable,
} from './dma-buf.ts';
import { returnToUser } from '../syscalls.ts';
import { E } from '../../uapi/errno.ts';

export interface ImporterOptions {
  /** dma_buf_dynamic_attach (true) or the static dma_buf_attach (false, no importer ops) */
  dynamic: boolean;
  /** allow_peer2peer of the importer ops */
  peer2peer: boolean;
  /** the importer ops have invalidate_mappings */
  revocable: boolean;
}

/** One attachment the importer driver holds, with its live mappings. */
export class ImporterAttachment {
  /** sg_tables mapped and not yet unmapped, oldest first */
  readonly mappings: SgTable[] = [];
  /** how many times invalidate_mappings told the importer to unmap */
  invalidated = 0;
  detached = false;
  /** set once dma_buf_dynamic_attach succeeds */
  attach!: DmaBufAttachment;
  constructor(public id: number, readonly dmabuf: DmaBuf) {}
  get key(): string {
    return `importer${this.id}`;
  }
}

/** The importer driver's attachments in this kernel, by id. */
export function importerAttachments(k: Kernel): Map<number, ImporterAttachment> {
  return k.importers;
}

function* driverCall<T>(k: Kernel, body: KGen<T>): KGen<T> {
  const r = yield* body;
  yield* returnToUser(k);
  return r;
}

/** invalidate_mappings of a revocable importer: it only records; it unmaps later from its own thread. */
function* importer_invalidate_mappings(k: Kernel, attach: DmaBufAttachment): KGen {
  const ia = attach.importer_priv as ImporterAttachment;
  yield ev('importer_invalidate', ia.key);
  ia.invalidated++;
  k.note(`${ia.key} told to unmap dmabuf${attach.dmabuf.id}`);
}
/** The importer's dma_buf_attach_ops, by (peer2peer ? 1 : 0) + (revocable ? 2 : 0). */
const IMPORTER_OPS: readonly DmaBufAttachOps[] = [0, 1, 2, 3].map((i) => ({
  name: 'importer',
  allow_peer2peer: (i & 1) !== 0,
  ...(i & 2 && { invalidate_mappings: importer_invalidate_mappings }),
}));

/**
 * Attach to the DMABUF behind `fd`: the driver takes its own file reference (dma_buf_get) and keeps
 * it until detach. Returns the attachment id, or the attach error (-EBADF, -EINVAL for a file that
 * is not a DMABUF, or the exporter's refusal).
 */
export function* importer_attach(k: Kernel, p: Process, fd: number, opts: ImporterOptions): KGen<number> {
  return yield* driverCall(k, (function* () {
    const dmabuf = yield* dma_buf_get(k, p, fd);
    if (typeof dmabuf === 'number') return dmabuf;
    // made before attaching: invalidate_mappings can reach the attachment as soon as it is linked
    // (its id is given on success, in the same step as the link's unlock, before anyone can call it)
    const ia = new ImporterAttachment(0, dmabuf);
    const ops = opts.dynamic ? IMPORTER_OPS[(opts.peer2peer ? 1 : 0) + (opts.revocable ? 2 : 0)] : null;
    const attach = yield* dma_buf_dynamic_attach(k, dmabuf, 'importer', ops, ia);
    if (typeof attach === 'number') {
      yield* dma_buf_put(k, dmabuf);
      return attach;
    }
    ia.id = k.nextId('importer') + 1;
    attach.importer = ia.key;
    ia.attach = attach;
    importerAttachments(k).set(ia.id, ia);
    return ia.id;
  })());
}

function* lookup(k: Kernel, id: number): KGen<ImporterAttachment | null> {
  yield ev('importer_lookup', `importer${id}`, 'r');
  const ia = importerAttachments(k).get(id);
  return ia && !ia.detached ? ia : null;
}

/**
 * Map the attachment for the device (dma_buf_map_attachment under the resv lock). Returns the
 * number of live mappings, or the exporter's error (-ENODEV for a revoked VFIO buffer).
 * An unknown or detached attachment is -ENOENT (the driver's own rule).
 */
export function* importer_map(k: Kernel, id: number): KGen<number> {
  return yield* driverCall(k, (function* () {
    const ia = yield* lookup(k, id);
    if (!ia) return -E.ENOENT;
    yield* ia.dmabuf.resv.lock();
    const sgt = yield* dma_buf_map_attachment(k, ia.attach);
    yield* ia.dmabuf.resv.unlock();
    if (typeof sgt === 'number') return sgt;
    yield ev('importer_map', ia.key);
    ia.mappings.push(sgt);
    return ia.mappings.length;
  })());
}

/**
 * Unmap the oldest live mapping (dma_buf_unmap_attachment under the resv lock): the exporter drops
 * its kref, which may complete a revoker's wait. Returns how many times the importer has been told
 * to unmap so far; -EINVAL when nothing is mapped, -ENOENT for an unknown attachment.
 */
export function* importer_unmap(k: Kernel, id: number): KGen<number> {
  return yield* driverCall(k, (function* () {
    const ia = yield* lookup(k, id);
    if (!ia) return -E.ENOENT;
    yield ev('importer_unmap', ia.key);
    const sgt = ia.mappings.shift();
    if (!sgt) return -E.EINVAL;
    yield* ia.dmabuf.resv.lock();
    const told = ia.invalidated; // invalidations run under the resv lock
    yield* dma_buf_unmap_attachment(k, ia.attach, sgt);
    yield* ia.dmabuf.resv.unlock();
    return told;
  })());
}

/** Detach and drop the driver's file reference; -EBUSY while a mapping is live (the driver's rule). */
export function* importer_detach(k: Kernel, id: number): KGen<number> {
  return yield* driverCall(k, (function* () {
    const ia = yield* lookup(k, id);
    if (!ia) return -E.ENOENT;
    yield ev('importer_detach', ia.key);
    if (ia.mappings.length) return -E.EBUSY;
    ia.detached = true;
    yield* dma_buf_detach(k, ia.attach);
    yield* dma_buf_put(k, ia.dmabuf);
    return 0;
  })());
}
