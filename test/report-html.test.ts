// The report pages as files: run --html keeps a frame per operation with the state after it;
// diff --html puts the two kernels side by side with each difference and its reviewed reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ReportData } from '../src/report/html.ts';
import { cli } from './bundled.ts';

/** Run `body` with a fresh temporary directory, removed after. */
function inTmp(body: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'vfio-sim-rh-'));
  try {
    body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const dataOf = (html: string) => JSON.parse(/<script id="data" type="application\/json">(.*?)<\/script>/s.exec(html)![1]) as ReportData;

test('run --html: one frame per operation, each with its call, result and the state after it; offline by its CSP', () => {
  inTmp((dir) => {
    const out = join(dir, 'run.html');
    const r = cli('run', '--html', out, '--json');
    assert.equal(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as { steps: Array<{ call: string }> };
    const html = readFileSync(out, 'utf8');
    assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
    assert.ok(!/<(link|img|script) [^>]*src=/.test(html), 'nothing loaded from elsewhere');
    const d = dataOf(html);
    assert.equal(d.kind, 'run');
    assert.deepEqual(d.frames.map((f) => f.label), doc.steps.map((s) => s.call));
    // the state after the mmap shows the VMA, and after the store its PMD
    const store = d.frames.find((f) => f.label.startsWith('store'))!;
    assert.ok(store.state.processes[0].page_table.some((e) => e.order === 9));
    // and its frame lists the fault-handler calls that installed it
    assert.ok(store.notes.some((n) => /^fault order 9 va 0x[0-9a-f]+ pfn 0x[0-9a-f]+ -> NOPAGE$/.test(n)), store.notes.join('; '));
  });
});

test('diff --html: both kernels side by side, every difference with its class and reason', () => {
  inTmp((dir) => {
    const out = join(dir, 'diff.html');
    const r = cli('diff', 'scenarios/bar2-memory-disable.yaml', '--kernels', 'series-v4,series-v8', '--html', out, '--json');
    assert.equal(r.status, 0, r.stderr);
    const rep = JSON.parse(r.stdout) as { steps: unknown[]; expected: number; rules: Array<{ reason: string }> };
    const html = readFileSync(out, 'utf8');
    assert.match(html, /<h1>vfio-sim: diff bar2-memory-disable: series-v4 vs series-v8<\/h1>/);
    assert.equal((html.match(/<tr class="[^"]*"><td>main\[/g) ?? []).length, rep.steps.length, 'a row per step');
    assert.equal((html.match(/>expected: /g) ?? []).length, rep.expected);
    const reason = rep.rules[0].reason.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
    assert.ok(html.includes(reason), 'the reviewed reason is shown');
  });
});

test('run --html shows each DMABUF\'s importers and, for iommufd, the IOVA ranges that map it', () => {
  inTmp((dir) => {
    const out = join(dir, 'io.html');
    const r = cli('run', 'scenarios/iommufd-p2p-two-slices-revoke-one.yaml', '--html', out);
    assert.equal(r.status, 0, r.stderr);
    const d = dataOf(readFileSync(out, 'utf8'));
    const mapped = d.frames.find((f) => f.label.startsWith('iommufd_map'))!;
    const imp = mapped.state.dmabufs.flatMap((b) => b.importers);
    assert.deepEqual(imp, [{ importer: 'iommufd(pages0)', peer2peer: true, revoked: false, iovas: [{ ioas: 1, iova: '0x0', length: '0x200000', mapped: true }] }]);
    // after the revoke of one slice, its pages say so
    assert.ok(d.frames.some((f) => f.state.dmabufs.some((b) => b.importers.some((a) => a.revoked === true))), 'a revoked importer is shown');
  });
});
