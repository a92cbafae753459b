// The conformance guest: a Linux kernel and its modules (Debian's 6.12 package by default, or the
// user's build), an initramfs with busybox, the vfio modules in modules.dep order and the
// executor, booted in QEMU with the scenarios' devices behind PCIe root ports and an emulated
// Intel IOMMU. Everything is built under a cache folder; nothing is installed on the host but the
// packages setup() installs.
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { homedir } from 'node:os';
import { gunzipSync } from 'node:zlib';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/**
 * Where the guest's downloads and builds are kept: .cache/conform in a clone; for the installed
 * package (no src/ beside dist/), the user's cache directory, not node_modules. VFIO_SIM_CACHE overrides.
 */
export const CACHE = process.env.VFIO_SIM_CACHE
  ? join(process.env.VFIO_SIM_CACHE, 'conform')
  : existsSync(join(ROOT, 'src'))
    ? join(ROOT, '.cache', 'conform')
    : join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'vfio-sim', 'conform');
const EXEC_SRC = join(dirname(fileURLToPath(import.meta.url)), 'guest', 'exec.c');

export class GuestError extends Error {}

type Log = (s: string) => void;

function run(cmd: string, args: string[], opts: SpawnSyncOptions = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (r.error) throw new GuestError(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new GuestError(`${cmd} ${args.join(' ')} exited ${r.status}: ${String(r.stderr ?? '').trim().split('\n').slice(-5).join(' | ')}`);
  return String(r.stdout ?? '');
}
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;

/** Is this ELF file statically linked (no PT_INTERP program header)? */
function isStatic(file: string): boolean {
  const b = readFileSync(file);
  if (b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2) return false;
  const phoff = Number(b.readBigUInt64LE(0x20)), phentsize = b.readUInt16LE(0x36), phnum = b.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) if (b.readUInt32LE(phoff + i * phentsize) === 3) return false;
  return true;
}

const BUSYBOX = ['/bin/busybox', '/usr/bin/busybox'];
const PACKAGES = { 'qemu-system-x86_64': 'qemu-system-x86', busybox: 'busybox-static', depmod: 'kmod', gcc: 'gcc', xz: 'xz-utils', 'dpkg-deb': 'dpkg', 'apt-get': 'apt' } as const;

/**
 * Install what the runner needs with apt-get (as root), once: qemu-system-x86, busybox-static (its
 * busybox is static, so it runs in the initramfs), kmod (depmod), gcc (the executor).
 */
export function setup(log: Log): void {
  const missing = new Set<string>();
  for (const [cmd, pkg] of Object.entries(PACKAGES)) if (!has(cmd)) missing.add(pkg);
  const bb = BUSYBOX.find((f) => existsSync(f));
  if (!bb || !isStatic(bb)) missing.add('busybox-static');
  if (!missing.size) return;
  if (!has('apt-get')) throw new GuestError(`missing ${[...missing].join(', ')}, and there is no apt-get to install them`);
  const sudo = process.getuid?.() === 0 ? [] : has('sudo') ? ['sudo', '-n'] : null;
  if (!sudo) throw new GuestError(`missing ${[...missing].join(', ')}: install them as root (apt-get install ${[...missing].join(' ')})`);
  const apt = (args: string[]) => {
    const [cmd, ...rest] = [...sudo, 'apt-get', ...args];
    return spawnSync(cmd, rest, { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  };
  log(`setup: apt-get install ${[...missing].join(' ')}`);
  let r = apt(['install', '-y', '--no-install-recommends', ...missing]);
  if (r.status !== 0) {
    log('setup: apt-get update');
    apt(['update']);
    r = apt(['install', '-y', '--no-install-recommends', ...missing]);
  }
  if (r.status !== 0) throw new GuestError(`apt-get install ${[...missing].join(' ')} failed: ${String(r.stderr).trim().split('\n').slice(-3).join(' | ')}`);
}

export interface GuestKernel {
  /** what results are labelled with, e.g. "linux-6.12.107+deb12-amd64" (set from the guest's uname once booted) */
  label: string;
  image: string;
  /** lib/modules/<release> */
  modules: string;
  release: string;
  source: string;
}

const DEBIAN_PKG = /^linux-image-(6\.12\.\d+\+deb\d+-amd64)-unsigned$/;

/** The newest Debian 6.12 amd64 kernel package apt knows (apt-get update once if it knows none). */
function debianPackage(log: Log): { pkg: string; release: string } {
  const find = () =>
    run('apt-cache', ['search', '--names-only', '^linux-image-6\\.12\\.[0-9]+\\+deb[0-9]+-amd64-unsigned$'])
      .split('\n')
      .map((l) => l.split(' ')[0])
      .filter((p) => DEBIAN_PKG.test(p))
      .sort((a, b) => Number(a.match(/6\.12\.(\d+)/)![1]) - Number(b.match(/6\.12\.(\d+)/)![1]));
  let pkgs = find();
  if (!pkgs.length && process.getuid?.() === 0) {
    log('kernel: apt-get update (no 6.12 kernel package known)');
    spawnSync('apt-get', ['update'], { encoding: 'utf8' });
    pkgs = find();
  }
  if (!pkgs.length) throw new GuestError('apt knows no linux-image-6.12.*+deb*-amd64-unsigned package (Debian bookworm-security or trixie has them)');
  const pkg = pkgs[pkgs.length - 1];
  return { pkg, release: pkg.match(DEBIAN_PKG)![1] };
}

/** Debian's 6.12 kernel: apt-get download, dpkg-deb -x, depmod -b (never installed on the host). */
export function debianKernel(log: Log): GuestKernel {
  const { pkg, release } = debianPackage(log);
  const dir = join(CACHE, 'kernel', release);
  const root = join(dir, 'root');
  const image = join(root, 'boot', `vmlinuz-${release}`);
  const modules = join(root, 'lib', 'modules', release);
  if (!existsSync(join(modules, 'modules.dep'))) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    log(`kernel: apt-get download ${pkg}`);
    run('apt-get', ['download', pkg], { cwd: dir });
    const deb = readdirSync(dir).find((f) => f.endsWith('.deb'));
    if (!deb) throw new GuestError(`apt-get download ${pkg} left no .deb`);
    run('dpkg-deb', ['-x', join(dir, deb), root]);
    rmSync(join(dir, deb));
    run('depmod', ['-b', root, release]);
  }
  return { label: `linux-${release}`, image, modules, release, source: `Debian package ${pkg}` };
}

/** The user's kernel: a bzImage and the modules folder `make modules_install` made. */
export function customKernel(image: string, modulesDir: string): GuestKernel {
  if (!existsSync(image)) throw new GuestError(`--kernel-image ${image}: no such file`);
  let mod = resolve(modulesDir);
  // accept INSTALL_MOD_PATH, its lib/modules, or lib/modules/<release>
  for (const sub of ['lib/modules', '']) {
    const d = join(mod, sub);
    if (existsSync(d) && !existsSync(join(d, 'modules.dep')) && !existsSync(join(d, 'kernel'))) {
      const rels = readdirSync(d).filter((x) => statSync(join(d, x)).isDirectory());
      if (rels.length === 1) {
        mod = join(d, rels[0]);
        break;
      }
    }
  }
  if (!existsSync(join(mod, 'kernel')) && !existsSync(join(mod, 'modules.builtin'))) throw new GuestError(`--modules ${modulesDir}: no lib/modules/<release> tree there`);
  const release = basename(mod);
  if (!existsSync(join(mod, 'modules.dep'))) run('depmod', ['-b', resolve(mod, '..', '..', '..'), release]);
  return { label: `linux-${release}`, image: resolve(image), modules: mod, release, source: `${resolve(image)} with ${mod}` };
}

/** The modules to insmod for vfio-pci and the type1 IOMMU backend, dependencies first (modules.dep). */
export function moduleOrder(modules: string): string[] {
  const dep = new Map<string, string[]>();
  for (const l of readFileSync(join(modules, 'modules.dep'), 'utf8').split('\n')) {
    const [m, rest] = l.split(':');
    if (m) dep.set(m, (rest ?? '').trim().split(/\s+/).filter(Boolean));
  }
  const builtin = existsSync(join(modules, 'modules.builtin')) ? readFileSync(join(modules, 'modules.builtin'), 'utf8') : '';
  const order: string[] = [];
  const visit = (m: string) => {
    if (order.includes(m)) return;
    for (const d of dep.get(m) ?? []) visit(d);
    order.push(m);
  };
  const norm = (p: string) => basename(p).replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
  for (const want of ['vfio_iommu_type1', 'vfio_pci']) {
    const m = [...dep.keys()].find((k) => norm(k) === want);
    if (m) visit(m);
    else if (!builtin.split('\n').some((b) => norm(b) === want)) throw new GuestError(`${modules}: ${want} is neither a module nor built in`);
  }
  return order;
}

function decompress(file: string, dst: string): void {
  const tool = file.endsWith('.xz') ? 'xz' : file.endsWith('.zst') ? 'zstd' : null;
  if (tool) {
    const r = spawnSync(tool, ['-dc', file], { maxBuffer: 256 << 20 });
    if (r.status !== 0) throw new GuestError(`${tool} -dc ${file}: ${String(r.stderr).trim() || r.error?.message}`);
    writeFileSync(dst, r.stdout);
  } else if (file.endsWith('.gz')) writeFileSync(dst, gunzipSync(readFileSync(file)));
  else copyFileSync(file, dst);
}

/** Build the executor with gcc -static, cached by the source's hash. */
export function buildExecutor(): string {
  const src = readFileSync(EXEC_SRC);
  const bin = join(CACHE, 'exec', `vfio-sim-exec-${createHash('sha256').update(src).digest('hex').slice(0, 12)}`);
  if (!existsSync(bin)) {
    mkdirSync(dirname(bin), { recursive: true });
    run('gcc', ['-static', '-O2', '-Wall', '-o', `${bin}.tmp`, EXEC_SRC]);
    run('mv', [`${bin}.tmp`, bin]);
  }
  return bin;
}

/** The guest's /init: mount, insmod, THP always, run the executor with its results on ttyS1. */
function initScript(mods: Array<{ name: string; params: string }>): string {
  return [
    '#!/bin/busybox sh',
    '/bin/busybox --install -s /bin',
    'export PATH=/bin',
    'mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev',
    'mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null',
    // a module that does not load stops the run, with the reason on the results port
    ...mods.map((m) => `insmod /lib/modules/${m.name} ${m.params} || { echo '{"fatal":"insmod ${m.name} failed (see the guest console)"}' > /dev/ttyS1; poweroff -f; }`),
    'echo always > /sys/kernel/mm/transparent_hugepage/enabled',
    'echo "vfio-sim: executor starting at $(cut -d" " -f1 /proc/uptime) s"',
    '/bin/vfio-sim-exec /program.txt /dev/ttyS1',
    'echo "vfio-sim: executor exit $? at $(cut -d" " -f1 /proc/uptime) s"',
    'poweroff -f',
    '',
  ].join('\n');
}

/** An uncompressed newc initramfs for this kernel and program (busybox cpio). */
export function buildInitramfs(k: GuestKernel, program: string, work: string): string {
  const dir = join(work, 'initramfs');
  rmSync(dir, { recursive: true, force: true });
  for (const d of ['bin', 'lib/modules', 'dev', 'proc', 'sys', 'tmp']) mkdirSync(join(dir, d), { recursive: true });
  const bb = BUSYBOX.find((f) => existsSync(f) && isStatic(f));
  if (!bb) throw new GuestError('no static busybox (apt-get install busybox-static)');
  copyFileSync(bb, join(dir, 'bin', 'busybox'));
  copyFileSync(buildExecutor(), join(dir, 'bin', 'vfio-sim-exec'));
  const mods = moduleOrder(k.modules).map((m) => {
    const name = basename(m).replace(/\.(xz|zst|gz)$/, '');
    decompress(join(k.modules, m), join(dir, 'lib', 'modules', name));
    // the guest's IOMMU has no interrupt remapping (intremap=off), which type1 refuses by default
    return { name, params: name.startsWith('vfio_iommu_type1') ? 'allow_unsafe_interrupts=1' : '' };
  });
  writeFileSync(join(dir, 'init'), initScript(mods));
  chmodSync(join(dir, 'init'), 0o755);
  writeFileSync(join(dir, 'program.txt'), program);
  const out = join(work, 'initramfs.cpio');
  const list = run('find', ['.'], { cwd: dir });
  const r = spawnSync('sh', ['-c', `busybox cpio -o -H newc -R 0:0 > '${out}'`], { cwd: dir, input: list, encoding: 'utf8' });
  if (r.status !== 0) throw new GuestError(`busybox cpio: ${r.stderr}`);
  return out;
}

export interface BootResult {
  /** the executor's JSON lines */
  results: string;
  console: string;
  ms: number;
  command: string[];
}

export interface BootOptions {
  accel: 'tcg' | 'kvm';
  timeoutS: number;
  memMiB?: number;
}

/** Boot QEMU (q35, -cpu max for 1 GiB pages, an Intel IOMMU) and collect what the executor wrote. */
export function boot(k: GuestKernel, initramfs: string, devices: string[], work: string, o: BootOptions): BootResult {
  const results = join(work, 'results.jsonl'), consoleLog = join(work, 'console.log');
  rmSync(results, { force: true });
  rmSync(consoleLog, { force: true });
  const args = [
    '-machine', 'q35', '-accel', o.accel, '-cpu', o.accel === 'kvm' ? 'host' : 'max', '-smp', '1', '-m', String(o.memMiB ?? 1024),
    '-nodefaults', '-display', 'none', '-no-reboot',
    '-kernel', k.image, '-initrd', initramfs,
    // the module parameter also reaches a type1 built into the kernel
    '-append', 'console=ttyS0 loglevel=4 intel_iommu=on transparent_hugepage=always panic=-1 vfio_iommu_type1.allow_unsafe_interrupts=1',
    '-serial', `file:${consoleLog}`, '-serial', `file:${results}`,
    '-device', 'intel-iommu,intremap=off',
    ...devices,
  ];
  const t0 = performance.now();
  const r = spawnSync('qemu-system-x86_64', args, { encoding: 'utf8', timeout: o.timeoutS * 1000 });
  const ms = performance.now() - t0;
  const out = { results: existsSync(results) ? readFileSync(results, 'utf8').replace(/\r/g, '') : '', console: existsSync(consoleLog) ? readFileSync(consoleLog, 'utf8') : '', ms, command: ['qemu-system-x86_64', ...args] };
  if (r.error) throw new GuestError(`qemu-system-x86_64: ${r.error.message}${(r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT' ? ` (after ${o.timeoutS} s; console: ${out.console.trim().split('\n').slice(-5).join(' | ')})` : ''}`);
  if (r.status !== 0) throw new GuestError(`qemu-system-x86_64 exited ${r.status}: ${String(r.stderr).trim().split('\n').slice(-5).join(' | ')}`);
  return out;
}
