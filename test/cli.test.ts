// The command line's usage errors: every malformed option or unknown name exits 2 with a message,
// like invalid input, never runs nothing and passes (exit 0) or looks like a finding (exit 1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'vfio-sim.js');
const RACE = 'scenarios/races/store-vs-pwrite.yaml';
const cli = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8' });

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
