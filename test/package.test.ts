// The package as a user gets it: `npm pack` (which builds dist/), installed into a fresh project,
// used there with plain node and no tsx: (a) the bin, (b) the API imported by name, (c) a consumer
// type-checked with tsc --strict against the shipped declarations. Dependencies come from the npm
// cache that installing this repository filled (--prefer-offline).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

test('npm pack installs into a fresh project: bin, API under plain node, strict types', { timeout: 300_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'vfio-sim-pack-'));
  try {
    const packed = JSON.parse(execFileSync(NPM, ['pack', '--json', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = packed[0].files.map((f) => f.path);
    // what ships: the build, the bin, the reference; not the sources, tests, bench or CI
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'dist/explore/worker-entry.mjs', 'bin/vfio-sim.js', 'schema/scenario.schema.json', 'scenarios/quickstart.yaml', 'docs/scenario-format.md', 'LICENSE', 'README.md']) assert.ok(files.includes(f), `${f} is packed`);
    for (const f of files) assert.ok(!/^(src|test|bench|fuzz|\.ci|scripts)\//.test(f), `${f} is not packed`);
    const app = join(dir, 'app');
    execFileSync('mkdir', ['-p', app]);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    execFileSync(NPM, ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', join(dir, packed[0].filename)], { cwd: app, stdio: 'pipe' });
    const installed = readdirSync(join(app, 'node_modules'));
    assert.ok(!installed.includes('tsx') && !installed.includes('esbuild'), 'tsx and esbuild are not installed with the package');

    // (a) the bin
    const bin = join(app, 'node_modules', '.bin', 'vfio-sim');
    const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;
    assert.equal(execFileSync(bin, ['--version'], { cwd: app, encoding: 'utf8' }).trim(), version);
    const run = spawnSync(bin, ['run'], { cwd: app, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /PASS: \d+ steps, every expectation met, no violation/);
    const check = spawnSync(bin, ['check', join(app, 'node_modules', 'vfio-sim', 'scenarios', 'races', 'fault-vs-revoke.yaml'), '--workers', '2'], { cwd: app, encoding: 'utf8' });
    assert.equal(check.status, 0, check.stderr);
    assert.match(check.stdout, /no violation: every interleaving explored/);

    // (b) the API by package name, under plain node
    const script = `
      import { createKernel, encode, uapi } from 'vfio-sim';
      const sim = createKernel({ devices: [{ name: 'gpu0', profile: 'h100' }] });
      const p = sim.spawn();
      const dev = p.open('/dev/vfio/devices/gpu0');
      const info = new Uint8Array(uapi.vfio_device_info.size);
      info.set(encode(uapi.vfio_device_info, { argsz: info.length }));
      p.ioctl(dev, uapi.IOCTLS.VFIO_DEVICE_GET_INFO, info);
      const va = p.mmap(0, 65536, 3, 1, dev, 0);
      p.store(va, 4, 0xdeadbeef);
      console.log(JSON.stringify({ value: p.load(va, 4).toString(16), violations: sim.violations.length }));
    `;
    writeFileSync(join(app, 'use.mjs'), script);
    const out = execFileSync(process.execPath, ['use.mjs'], { cwd: app, encoding: 'utf8' });
    assert.deepEqual(JSON.parse(out), { value: 'deadbeef', violations: 0 });

    // (c) a strict consumer type-checks against the declarations
    writeFileSync(join(app, 'use.ts'), `
      import { createKernel, type SimKernel, type SimProcess } from 'vfio-sim';
      const sim: SimKernel = createKernel({ devices: [{ name: 'gpu0', profile: 'h100' }], kernel: 'series-v8' });
      const p: SimProcess = sim.spawn();
      const fd: number = p.open('/dev/vfio/devices/gpu0');
      const v: bigint = p.load(p.mmap(0, 4096, 1, 1, fd, 0), 4);
      export const out: string = v.toString(16);
      // @ts-expect-error: a width the API does not take
      p.load(0, 3);
    `);
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions: { strict: true, noEmit: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', lib: ['ES2022'], types: ['node'], typeRoots: [join(ROOT, 'node_modules', '@types')], skipLibCheck: false }, files: ['use.ts'] }));
    const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app], { encoding: 'utf8' });
    assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('npm run docs: the API reference builds with no warning (every type the API names is documented)', { timeout: 120_000 }, () => {
  const out = mkdtempSync(join(tmpdir(), 'vfio-sim-api-'));
  try {
    const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typedoc', 'bin', 'typedoc'), '--out', out], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const index = readFileSync(join(out, 'index.html'), 'utf8');
    for (const name of ['createKernel', 'SimKernel', 'SimProcess', 'parseScenario', 'runScenario']) assert.ok(index.includes(name), `${name} is in the reference`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
