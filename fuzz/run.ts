// npm run fuzz [-- --syscalls N] [-- --files N] [-- --seed S]: the project's own fuzzing, printing
// the seed, counts and rates, and a shrunk counterexample on failure (exit 1).
import { Command } from 'commander';
import { fuzzSyscalls } from './syscalls.ts';
import { fuzzFiles } from './files.ts';

const program = new Command()
  .name('fuzz')
  .option('--syscalls <n>', 'about this many syscalls, in random sequences of up to 40', '20000')
  .option('--files <n>', 'mutated scenario files through the loader and runner', '300')
  .option('--seed <s>', 'fast-check seed (default: time-based, printed)')
  .parse(process.argv);
const o = program.opts<{ syscalls: string; files: string; seed?: string }>();
const seed = o.seed !== undefined ? Number(o.seed) : Date.now() % 2 ** 31;
const out = (s: string) => console.log(s);
out(`vfio-sim fuzz: seed ${seed} (rerun with --seed ${seed})`);
let failed = false;
try {
  const s = fuzzSyscalls({ runs: Math.max(1, Math.ceil(Number(o.syscalls) / 20)), seed, out });
  out(`syscalls: ${s.calls} calls in ${(s.ms / 1000).toFixed(1)} s (${Math.round((s.calls * 1000) / s.ms)}/s, each sequence run twice for determinism); 0 uncaught exceptions; slowest sequence ${s.slowestMs.toFixed(0)} ms; model findings: ${[...s.findings].map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`);
} catch (e) {
  failed = true;
  out(`syscalls: FAILED\n${(e as Error).message}`);
}
try {
  const f = fuzzFiles({ files: Number(o.files), seed, out });
  out(`files: ${f.files} mutated scenario files in ${(f.ms / 1000).toFixed(1)} s (${Math.round((f.files * 1000) / f.ms)}/s): ${f.invalid} invalid (exit 2 with file, line and field), ${f.ran} ran; slowest ${f.slowestMs.toFixed(0)} ms; 0 stack traces`);
} catch (e) {
  failed = true;
  out(`files: FAILED\n${(e as Error).message}`);
}
process.exitCode = failed ? 1 : 0;
