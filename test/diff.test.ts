// vfio-sim diff: the zap-range finding (docs/zap-range-finding.md) as a step-by-step diff of
// v7.1 and series-v4, the fixed kernel matching v7.1, the expected-differences data, and the CLI's
// exit codes.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { loadScenarioFile } from '../src/scenario/loader.ts';
import { allDifferences, diffScenario, type DiffReport } from '../src/diff/diff.ts';
import { ExpectedDataError, loadExpected, matches, parseExpected } from '../src/diff/expected.ts';
import { KERNELS } from '../src/kernel/variants.ts';
import { bundledScenarios } from './bundled.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'vfio-sim.js');
const EXPECTED = loadExpected(join(ROOT, 'data', 'expected-differences.yaml'));
const BAR2 = 'scenarios/bar2-memory-disable.yaml';
const RACE = 'scenarios/races/load-vs-reset-bar2.yaml';

const diff = (file: string, kernels: [string, string], check = false) => diffScenario(loadScenarioFile(file), { kernels, expected: EXPECTED, check });
const stepsWith = (r: DiffReport, cls: 'flagged' | 'expected') => r.steps.filter((s) => s.differences.some((d) => d.class === cls)).map((s) => s.where);
const step = (r: DiffReport, where: string) => r.steps.find((s) => s.where === where)!;

// bar2-memory-disable: main[10] clears COMMAND.MEMORY, [11] loads BAR2 (PMD), [12] BAR0 page 0
// (pgoff 2, zapped by v4 too), [13] BAR0 page 3 (pgoff 5), [15] sets MEMORY, [16]/[17] reload;
// [19] D3hot, [20]/[21] loads, [22] D0, [23]/[24] reloads; [25] VFIO_DEVICE_RESET, [26]-[28] loads.
const STALE_LOADS = ['main[11]', 'main[13]', 'main[20]', 'main[21]'];
const REFAULTS = ['main[16]', 'main[17]', 'main[23]', 'main[24]', 'main[26]', 'main[28]'];

describe('diff of bar2-memory-disable, v7.1 vs series-v4', () => {
  const r = diff(BAR2, ['v7.1', 'series-v4']);

  test('flags exactly the steps where decode is off or back, and exits 1', () => {
    assert.deepEqual(stepsWith(r, 'flagged').sort(), ['main[10]', ...STALE_LOADS, ...REFAULTS].sort());
    assert.equal(r.exit, 1);
    assert.ok(r.flagged > 0);
  });

  test('with decode off, v7.1 SIGBUSes and series-v4 loads all ones through the surviving entry', () => {
    for (const w of STALE_LOADS) {
      const s = step(r, w);
      assert.match(s.per['v7.1']!.result, /^SIGBUS/, w);
      assert.match(s.per['series-v4']!.result, /^ok 0xf+$/, w);
      const d = s.differences.find((x) => x.kind === 'result' && x.field === 'outcome')!;
      assert.equal(d.class, 'flagged');
      const v = s.differences.find((x) => x.kind === 'verdict')!;
      assert.equal(v.field, 'decode-enabled');
      assert.equal(v.values['v7.1'], 'holds');
      assert.match(v.values['series-v4'], /reached gpu0 BAR[02] .* while (COMMAND\.MEMORY is clear|in D3hot)/);
    }
    // BAR0 page 0 (pgoff 2 < size/PAGE_SIZE = 4) is inside v4's [0, size) zap: SIGBUS on both
    assert.deepEqual(step(r, 'main[12]').differences, []);
    assert.match(step(r, 'main[12]').per['series-v4']!.result, /^SIGBUS/);
  });

  test('clearing MEMORY is where series-v4 breaks no-stale-pte (the BAR2 PMD survives the revoke)', () => {
    const v = step(r, 'main[10]').differences;
    assert.deepEqual(v.map((d) => [d.kind, d.field, d.class]), [['verdict', 'no-stale-pte', 'flagged']]);
    assert.match(v[0].values['series-v4'], /va 0x[0-9a-f]+ -> pfn 0x20000000 \(order 9\) survives the revocation of \/dmabuf:vfio0:0000:3b:00\.0\/2/);
  });

  test('after memory is back, D0 and the reset, v7.1 refaults and series-v4 installs nothing', () => {
    for (const w of REFAULTS) {
      const s = step(r, w);
      assert.equal(s.per['v7.1']!.result, s.per['series-v4']!.result, w);
      assert.equal(s.per['v7.1']!.installed.length, 1, w);
      assert.deepEqual(s.per['series-v4']!.installed, [], w);
      assert.deepEqual(s.differences.map((d) => [d.kind, d.field, d.class]), [['installed', 'va', 'flagged']], w);
    }
  });

  test('maps lines differ only in the DMABUF name and inode: expected', () => {
    assert.deepEqual(stepsWith(r, 'expected').sort(), ['main[29]', 'main[8]']);
    for (const d of [...step(r, 'main[8]').differences, ...step(r, 'main[29]').differences]) {
      assert.equal(d.class, 'expected');
      assert.ok(d.rule === 'bar-mmap-vma-named-by-its-dmabuf' || d.rule === 'bar-mmap-vma-inode-of-its-dmabuf', d.rule);
    }
    assert.ok(r.rules.every((u) => /\[PATCH v4 04\/10\].*Message-ID 20260701171245\.90111-1-matt@ozlabs\.org/.test(u.spec)));
  });

  test('the verdict table: v7.1 holds everywhere; series-v4 breaks the two declared invariants', () => {
    const of = (inv: string) => r.verdicts.find((v) => v.invariant === inv)!.per;
    assert.deepEqual(of('decode-enabled')['series-v4'], { violated: true, declared: true, at: STALE_LOADS, message: of('decode-enabled')['series-v4'].message });
    assert.equal(of('no-stale-pte')['series-v4'].violated, true);
    for (const v of r.verdicts) assert.equal(v.per['v7.1'].violated, false, v.invariant);
  });
});

describe('series-v4-fixed (the whole-file zap)', () => {
  test('matches v7.1 on every stale-PTE step of bar2-memory-disable: no flagged difference', () => {
    const fixed = diff(BAR2, ['v7.1', 'series-v4-fixed']);
    assert.equal(fixed.flagged, 0);
    assert.equal(fixed.exit, 0);
    for (const w of ['main[10]', ...STALE_LOADS, ...REFAULTS]) {
      const s = step(fixed, w);
      assert.equal(s.per['series-v4-fixed']!.result, s.per['v7.1']!.result, w);
      assert.deepEqual(s.per['series-v4-fixed']!.installed, s.per['v7.1']!.installed, w);
      assert.deepEqual(s.differences, [], w);
    }
  });

  test('differs from series-v4 only in the scenarios about the zap range (docs/zap-range-finding.md)', () => {
    const zapRange = new Set([
      BAR2, RACE, 'scenarios/observed-6.12-ivshmem-fault-table-on-v4.yaml', 'scenarios/revoke-stale-pte-bar0-nonzero-offset.yaml',
      'scenarios/revoke-stale-pte-bar2-memory-disable.yaml', 'scenarios/revoke-stale-pte-bar4-d3hot.yaml',
      // the conformance scenarios that revoke a BAR2 mapping
      ...['command-off-on-pmd', 'command-off-on-pud', 'reset-while-mapped', 'uaccess-through-mapping', 'legacy-container-map-dma'].map((n) => `scenarios/conform/${n}.yaml`),
      // a guest's BAR2 memory slot: the EPT entry goes with the host's (docs/zap-range-finding.md, "The guest")
      'scenarios/vmm/guest-bar2-memory-disable.yaml', 'scenarios/vmm/guest-running-across-reset.yaml', 'scenarios/races/guest-fault-vs-memory-disable.yaml',
      // type1's MAP_DMA of a BAR mapping finds v4's stale PMDs (and the load after decode off reads them)
      'scenarios/vmm/legacy-map-dma-bar-decode.yaml',
    ]);
    for (const file of bundledScenarios()) {
      const n = allDifferences(diff(file, ['series-v4', 'series-v4-fixed'])).length;
      if (zapRange.has(file)) assert.ok(n > 0, `${file}: the fix should change what the user sees`);
      else assert.equal(n, 0, `${file}: the fix changed something else`);
    }
  });

  test('the load-vs-reset race: decode-enabled under exploration on series-v4 only', () => {
    const r = diff(RACE, ['series-v4', 'series-v4-fixed'], true);
    assert.equal(r.check!.per['series-v4'].verdict, 'decode-enabled');
    assert.match(r.check!.per['series-v4'].message!, /reached gpu0 BAR2 \+ 0x0 while in reset/);
    assert.match(r.check!.per['series-v4'].replay!, /--kernel series-v4 --schedule '/);
    assert.equal(r.check!.per['series-v4-fixed'].verdict, 'no violation');
    assert.ok(r.check!.per['series-v4-fixed'].complete);
    assert.deepEqual(r.check!.differences.map((d) => d.class), ['flagged']);
    const v71 = diff(RACE, ['v7.1', 'series-v4-fixed'], true);
    assert.equal(v71.check!.per['v7.1'].verdict, 'no violation');
    assert.equal(v71.exit, 0);
  });
});

describe('expected-differences data', () => {
  test('every entry covers some difference between v7.1 and series-v4, or series-v4 and series-v8, in the bundled scenarios', () => {
    const used = new Set<string>();
    for (const file of bundledScenarios())
      for (const pair of [['v7.1', 'series-v4'], ['series-v4', 'series-v8']] as Array<[string, string]>)
        for (const d of allDifferences(diff(file, pair))) if (d.rule) used.add(d.rule);
    assert.deepEqual(EXPECTED.map((e) => e.id).filter((id) => !used.has(id)), []);
  });

  test('an entry applies to its two kernels in either order, and only to them', () => {
    const e = EXPECTED.find((x) => x.id === 'revoke-feature-is-new-in-series')!;
    const d = { op: 'ioctl', kind: 'result' as const, field: 'outcome', args: { op: 'VFIO_DEVICE_FEATURE', feature: 'DMA_BUF_REVOKE' }, values: { 'v7.1': 'errno ENOTTY', 'series-v4': 'ok 0' } };
    assert.ok(matches(e, d, 'v7.1', 'series-v4'));
    assert.ok(matches(e, d, 'series-v4', 'v7.1'));
    assert.ok(!matches(e, { ...d, values: { 'v7.1': 'errno EINVAL', 'series-v4': 'ok 0' } }, 'v7.1', 'series-v4'));
    assert.ok(!matches(e, { ...d, args: { op: 'VFIO_DEVICE_FEATURE', feature: 'DMA_BUF' } }, 'v7.1', 'series-v4'));
    assert.ok(!matches(e, { ...d, values: { 'series-v4': 'errno ENOTTY', 'series-v4-fixed': 'ok 0' } }, 'series-v4', 'series-v4-fixed'));
  });

  test('an invalid entry is refused with file, line and field', () => {
    const bad = 'differences:\n  - id: x\n    match: { kind: maps }\n    kernels: [v7.1, series-*]\n    reason: because of something\n    spec: somewhere\n';
    assert.throws(() => parseExpected(bad, 'bad.yaml'), (e: Error) => e instanceof ExpectedDataError && /^bad\.yaml:6: differences\.0\.spec: /.test(e.message));
    assert.throws(() => parseExpected(bad.replace('kind: maps', 'kind: pte'), 'bad.yaml'), /bad\.yaml:3: differences\.0\.match\.kind/);
  });
});

describe('vfio-sim diff (CLI)', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [BIN, 'diff', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });

  test('an unknown kernel name exits 2 with the known names and no output', () => {
    const r = run(BAR2, '--kernels', 'v7.1,v9.9');
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /unknown kernel v9\.9 \(known: .*series-v4-fixed/);
    assert.equal(r.stdout, '');
    assert.equal(run(BAR2, '--kernels', 'v7.1').status, 2);
    assert.equal(run('scenarios/no-such-file.yaml').status, 2);
  });

  test('exit 1 with flagged differences (the default pair), 0 without; --json is one document', () => {
    const r = run(BAR2);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stdout, /^! main\[11\] +load addr=m2 offset=0x100 width=8/m);
    assert.match(r.stdout, /decode-enabled +v7\.1 +holds\n +series-v4 +VIOLATED at main\[11\], main\[13\], main\[20\], main\[21\] \(declared in expect_violations\)/);
    const j = run(BAR2, '--kernels', 'v7.1,series-v4-fixed', '--json');
    assert.equal(j.status, 0, j.stderr);
    const doc = JSON.parse(j.stdout);
    assert.deepEqual(doc.kernels, ['v7.1', 'series-v4-fixed']);
    assert.equal(doc.flagged, 0);
  });

  test('every kernel the diff can name is a modelled kernel', () => {
    assert.ok(['v7.1', 'series-v4', 'series-v4-fixed'].every((k) => k in KERNELS));
  });
});

test('series-v4 -> series-v8 on every bundled scenario: every difference is a reviewed one, and each v4 -> v8 entry is seen', () => {
  const used = new Map<string, number>();
  for (const file of bundledScenarios()) {
    const scn = loadScenarioFile(file);
    if (!scn.kernels.includes('series-v4') || !scn.kernels.includes('series-v8')) continue;
    const r = diffScenario(scn, { kernels: ['series-v4', 'series-v8'], expected: EXPECTED });
    assert.equal(r.flagged, 0, `${file}: ${allDifferences(r).filter((d) => d.class === 'flagged').map((d) => `${d.op} ${d.kind} ${d.field}`).join('; ')}`);
    for (const rule of r.rules) used.set(rule.id, (used.get(rule.id) ?? 0) + rule.count);
  }
  for (const id of ['memattr-feature-gone-from-v6', 'bar-mmap-vma-keeps-device-file-in-v8', 'zap-range-fixed-verdicts', 'zap-range-fixed-accesses', 'zap-range-fixed-refault', 'zap-range-fixed-guest-accesses', 'zap-range-fixed-guest-refault', 'export-without-memory-lock-from-v6'])
    assert.ok((used.get(id) ?? 0) > 0, `entry ${id} matched no difference`);
});
