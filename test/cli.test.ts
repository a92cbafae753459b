// The command line's usage errors: every malformed option or unknown name exits 2 with a message,
// like invalid input, never runs nothing and passes (exit 0) or looks like a finding (exit 1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, ROOT } from './bundled.ts';

const RACE = 'scenarios/races/store-vs-pwrite.yaml';

test('malformed numbers for check options exit 2 and name the option', () => {
  for (const [args, flag] of [
    [['--preemptions', 'x'], '--preemptions'],
    [['--preemptions', '-1'], '--preemptions'],
    [['--random', '-5'], '--random'],
    [['--random', '2.5'], '--random'],
    [['--random', '3', '--seed', 'zz'], '--seed'],
    [['--random', '3', '--depth', '0'], '--depth'],
    [['--max-executions', 'abc'], '--max-executions'],
    [['--max-seconds', '-1'], '--max-seconds'],
    [['--workers', 'many'], '--workers'],
  ] as Array<[string[], string]>) {
    const r = cli('check', RACE, ...args);
    assert.equal(r.status, 2, `${args.join(' ')}: exit ${r.status}\n${r.stdout}${r.stderr}`);
    assert.match(r.stderr, new RegExp(flag), args.join(' '));
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});

test('an unknown mutant is refused by run as by check; unknown options and commands, and a missing file argument, exit 2', () => {
  for (const args of [['run', '--mutant', 'nope'], ['check', RACE, '--mutant', 'nope'], ['check', RACE, '--bogus'], ['frob'], ['check']]) {
    const r = cli(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: exit ${r.status}\n${r.stdout}${r.stderr}`);
  }
  assert.match(cli('run', '--mutant', 'nope').stderr, /unknown mutant nope/);
  assert.equal(cli('--help').status, 0);
  const v = cli('--version');
  assert.equal(v.status, 0);
  assert.equal(v.stdout.trim(), JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
  assert.equal(cli('check', RACE, '--preemptions', '0').status, 3, 'a bounded search that finds nothing still exits 3');
});

test('run takes several files and directories, uses each scenario\'s kernels:, and with --all-kernels runs every listed kernel', () => {
  // a scenario whose kernels: leaves out the default runs on the first it lists
  const one = cli('run', 'scenarios/conform/command-off-on-pmd.yaml', '--json');
  assert.equal(one.status, 0, one.stderr);
  assert.equal(JSON.parse(one.stdout).kernel, 'v7.1');
  const many = cli('run', 'scenarios/races/fault-vs-revoke.yaml', 'scenarios/selftest');
  assert.equal(many.status, 0, many.stdout + many.stderr);
  const lines = many.stdout.trim().split('\n');
  assert.match(lines.at(-1)!, /^(\d+) passed, 0 failed \(\1 run\(s\) of \1 scenario\(s\)\)$/);
  assert.ok(lines.some((l) => l.startsWith('PASS  scenarios/selftest/')));
  const all = cli('run', 'scenarios/dmabuf-opath-uaf.yaml', '--all-kernels', '--json');
  assert.equal(all.status, 0, all.stderr);
  assert.deepEqual(JSON.parse(all.stdout).map((r: { kernel: string }) => r.kernel), ['v7.1', 'series-v4', 'series-v4-fixed', 'series-v6', 'series-v8', 'series-v8+annul']);
  // one failing run fails the whole: a kernel the scenario's expectations are not for
  const bad = cli('run', 'scenarios/quickstart.yaml', 'scenarios/dmabuf-memattr-gone-from-v6.yaml', '--kernel', 'series-v4');
  assert.equal(bad.status, 1);
  assert.match(bad.stdout, /^FAIL {2}scenarios\/dmabuf-memattr-gone-from-v6\.yaml {2}\(series-v4\)/m);
  assert.match(bad.stdout, /1 passed, 1 failed/);
  assert.equal(cli('run', 'scenarios/quickstart.yaml', '--all-kernels', '--kernel', 'v7.1').status, 2);
  assert.equal(cli('run', 'no-such-dir').status, 2);
});

test('kernels and config list as JSON too', () => {
  const k = cli('kernels', '--json');
  assert.equal(k.status, 0);
  const kernels = JSON.parse(k.stdout) as Array<{ name: string; default: boolean; dmabuf_lock: boolean; base: string }>;
  assert.deepEqual(kernels.filter((x) => x.default).map((x) => x.name), ['series-v8']);
  assert.equal(kernels.find((x) => x.name === 'series-v6')!.dmabuf_lock, true);
  assert.equal(kernels.find((x) => x.name === 'series-v4')!.dmabuf_lock, false);
  const c = cli('config', 'PCI_P2PDMA=n', '--json');
  assert.equal(c.status, 0);
  assert.equal(JSON.parse(c.stdout).PCI_P2PDMA, false);
});

test('help ends with examples and exit codes; every bundled scenario passes when run alone by the CLI', () => {
  for (const cmd of [[], ['run'], ['check'], ['replay'], ['diff'], ['conform']]) {
    const h = cli(...cmd, '--help');
    assert.equal(h.status, 0);
    assert.match(h.stdout, /Examples:\n {2}\$ vfio-sim /, `${cmd.join(' ') || 'vfio-sim'} --help`);
    assert.match(h.stdout, /Exit codes: 0 /, `${cmd.join(' ') || 'vfio-sim'} --help`);
  }
  // a directory runs each file as `vfio-sim run FILE` would: on the kernel its kernels: picks
  const all = cli('run', 'scenarios');
  assert.equal(all.status, 0, all.stdout.split('\n').filter((l) => l.startsWith('FAIL')).join('\n'));
  assert.match(all.stdout, /^(\d+) passed, 0 failed/m);
});

test('diff over a directory: a line per scenario that lists both kernels, the others named, the reviewed entries with reason and source; a flagged difference makes it exit 1', () => {
  const r = cli('diff', '--kernels', 'series-v4,series-v8', 'scenarios');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^vfio-sim diff: \d+ scenario\(s\), series-v4 vs series-v8/);
  assert.match(r.stdout, /^~ scenarios\/bar2-memory-disable\.yaml: \d+ difference\(s\) \(.*zap-range-fixed-verdicts x\d+/m);
  assert.match(r.stdout, /^= scenarios\/quickstart\.yaml: same$/m);
  assert.match(r.stdout, /not compared \(their kernels: do not list both\):\n(.*\n)*  scenarios\/revoke-stale-pte-bar4-d3hot\.yaml: series-v4\n/);
  assert.match(r.stdout, /^ {2}memattr-feature-gone-from-v6: 2 difference\(s\) in 2 scenario\(s\)\n {6}reason: .+\n {6}source: .+/m);
  assert.match(r.stdout, /every difference is a reviewed one \(\d+ in all\)\n$/);
  // with no entries every difference is flagged, in full
  const dir = mkdtempSync(join(tmpdir(), 'vfio-sim-diff-'));
  writeFileSync(join(dir, 'none.yaml'), 'differences: []\n');
  const f = cli('diff', '--kernels', 'series-v4,series-v8', '--expected', join(dir, 'none.yaml'), 'scenarios/bar2-memory-disable.yaml', 'scenarios/quickstart.yaml');
  assert.equal(f.status, 1);
  assert.match(f.stdout, /^! scenarios\/bar2-memory-disable\.yaml: \d+ difference\(s\), \d+ FLAGGED\n {6}! FLAGGED /m);
  assert.match(f.stdout, /1 scenario\(s\) with a FLAGGED difference/);
  // one page shows one scenario; a missing path is the user's input problem
  assert.equal(cli('diff', '--html', join(dir, 'x.html'), 'scenarios/races').status, 2);
  const m = cli('diff', 'no/such/dir');
  assert.equal(m.status, 2);
  assert.equal(m.stderr, 'vfio-sim: no/such/dir: no such file or directory\n');
});
