// Citations point at what a user of the package can read: a patch by subject (and Message-ID or date),
// a kernel file and function, a public repository or paper, or this repository's own docs. This test
// fails on any reference to the project's private working files (the behaviour specs, the research
// notes, the design contracts, the anchors list, or the folder they live in next to the checkout),
// listing file:line of each. The patterns are built from pieces so that this file does not match
// itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** What is scanned: every text file under these, and README.md. */
const SCANNED = ['src', 'test', 'bench', 'fuzz', 'scenarios', 'data', 'docs', 'schema', 'scripts', 'bin', '.ci', 'README.md'];
/** Generated or installed, never written by hand. */
const SKIPPED = new Set(['docs/api', 'node_modules']);

const MD = '\\.md';
const PRIVATE = new RegExp(
  [`spec/(?:series|mainline)${MD}`, `notes/[\\w.-]+${MD}`, `DESIGN${MD}`, `anchors${MD}`, '\\.\\./' + 'shared'].join('|'),
);

function* files(path: string): Generator<string> {
  const rel = relative(ROOT, path).split('\\').join('/');
  if (SKIPPED.has(rel) || rel.split('/').includes('node_modules')) return;
  let st;
  try {
    st = statSync(path);
  } catch {
    return; // a listed folder this checkout does not have
  }
  if (st.isDirectory()) {
    for (const name of readdirSync(path).sort()) yield* files(join(path, name));
  } else if (st.isFile()) {
    yield path;
  }
}

/** Every line of the scanned files that cites a private file, as `file:line: text`. */
function privateCitations(root = ROOT): string[] {
  const hits: string[] = [];
  for (const top of SCANNED) {
    for (const f of files(join(root, top))) {
      const buf = readFileSync(f);
      if (buf.includes(0)) continue; // binary
      buf.toString('utf8').split('\n').forEach((line, i) => {
        if (PRIVATE.test(line)) hits.push(`${relative(root, f).split('\\').join('/')}:${i + 1}: ${line.trim()}`);
      });
    }
  }
  return hits;
}

test('the pattern catches each private path', () => {
  for (const s of [
    'spec/' + 'series.md §4.3',
    'spec/' + 'mainline.md §6',
    'notes/' + 'linux-6.12-observed.md "faults"',
    'DESIGN' + '.md §3',
    'anchors' + '.md',
    '../' + 'shared/spec/',
  ])
    assert.ok(PRIVATE.test(s), s);
  for (const s of ['docs/invariants.md', 'docs/later-versions-notes.md', '[PATCH v4 05/10] vfio/pci: Convert BAR mmap() to use a DMABUF', 'drivers/vfio/pci/vfio_pci_dmabuf.c'])
    assert.ok(!PRIVATE.test(s), s);
});

test('no source, test, scenario, data file or doc cites a file users of the package do not have', () => {
  const hits = privateCitations();
  assert.deepEqual(hits, [], `cite the patch, the kernel file and function, or the repository's docs instead:\n${hits.join('\n')}`);
});
