// The Linux side of the benchmark: compile bench/minor-fault.c with gcc -O2 into .cache/bench/,
// run it on a page-cache-resident file of the same page count the simulator populated, and parse
// its JSON lines.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statfsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface LinuxRep {
  mode: 'read' | 'write';
  rep: number;
  pages: number;
  page_size: number;
  prep_s: number;
  seconds: number;
  minflt: number;
  majflt: number;
  faults_per_s: number;
  pages_per_s: number;
  /** getrusage ru_maxrss after the repetition: peak RSS so far (the mapped file's pages count once touched) */
  maxrss_kib: number;
}
export interface LinuxResult {
  pages: number;
  requested: number;
  file: string;
  fsNote: string;
  prepSeconds: number;
  reps: number;
  /** the median repetition (by wall time) of each mode */
  read: LinuxRep;
  write: LinuxRep;
  all: LinuxRep[];
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SRC = join(ROOT, 'bench', 'minor-fault.c');
const OUT_DIR = join(ROOT, '.cache', 'bench');
const BIN = join(OUT_DIR, 'minor-fault');

function free(dir: string): number {
  try {
    const s = statfsSync(dir);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return 0;
  }
}

export function compile(): { bin: string } | { skipped: string } {
  mkdirSync(OUT_DIR, { recursive: true });
  const fresh = existsSync(BIN) && statSync(BIN).mtimeMs >= statSync(SRC).mtimeMs;
  if (fresh) return { bin: BIN };
  const r = spawnSync('gcc', ['-O2', '-Wall', '-o', BIN, SRC], { encoding: 'utf8' });
  if (r.error) return { skipped: `gcc not runnable: ${r.error.message}` };
  if (r.status !== 0) return { skipped: `gcc -O2 failed: ${r.stderr.trim()}` };
  return { bin: BIN };
}

/**
 * A file of `pages` pages on tmpfs (/dev/shm) when it fits (with room to spare), else on the
 * temp dir or .cache/; if nothing holds it, the largest page count that fits half the free space.
 */
export function runLinux(pages: number, reps: number): LinuxResult | { skipped: string } {
  const c = compile();
  if ('skipped' in c) return c;
  const bytes = pages * 4096;
  const candidates = ['/dev/shm', tmpdir(), OUT_DIR].filter((d) => existsSync(d));
  let dir = candidates.find((d) => free(d) >= bytes * 1.25 + 256 * 2 ** 20);
  let n = pages;
  let fsNote = '';
  if (!dir) {
    dir = candidates.reduce((a, b) => (free(b) > free(a) ? b : a));
    n = Math.floor(free(dir) / 2 / 4096);
    if (n < 1) return { skipped: 'no file system has room for the test file' };
    fsNote = `reduced from ${pages} pages: only ${(free(dir) / 2 ** 30).toFixed(1)} GiB free on ${dir}`;
  }
  fsNote ||= dir === '/dev/shm' ? 'tmpfs (/dev/shm): page-cache resident by construction' : `${dir}: written then read back`;
  const file = join(dir, `vfio-sim-bench-${process.pid}.dat`);
  const r = spawnSync(c.bin, [file, String(n), 'both', String(reps)], { encoding: 'utf8', timeout: 120_000 });
  if (r.error || r.status !== 0) return { skipped: `minor-fault failed: ${r.error?.message ?? ''} ${r.stderr.trim()}` };
  const all = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as LinuxRep);
  const median = (mode: 'read' | 'write') => {
    const xs = all.filter((x) => x.mode === mode).sort((a, b) => a.seconds - b.seconds);
    if (!xs.length) throw new Error(`minor-fault printed no ${mode} repetition`);
    return xs[Math.floor(xs.length / 2)];
  };
  return { pages: n, requested: pages, file, fsNote, prepSeconds: all[0]?.prep_s ?? 0, reps, read: median('read'), write: median('write'), all };
}
