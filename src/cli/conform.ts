// vfio-sim conform [FILES…] [--kernel-image PATH --modules DIR] [--json]: the scenarios on a real
// kernel in QEMU beside the model, step by step. Exit 0 when every difference is a listed one
// (data/conform-differences.yaml), 1 otherwise or when the guest fails, 2 for invalid input.
import { devicesOpt } from './options.ts';
import { printJson } from './json.ts';
import type { Command } from 'commander';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join, relative } from 'node:path';
import { loadScenarioFile, ScenarioError } from '../scenario/loader.ts';
import { UnknownKernelError } from '../kernel/kernel.ts';
import { KERNELS } from '../kernel/variants.ts';
import { findMutant } from '../explore/mutants.ts';
import { ExpectedDataError, loadExpected } from '../diff/expected.ts';
import { ConformError } from '../conform/compile.ts';
import { formatConform, runConform } from '../conform/conform.ts';
import { GuestError } from '../conform/guest.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CONFORM_DIR = join(ROOT, 'scenarios', 'conform');
export const CONFORM_DIFFERENCES = join(ROOT, 'data', 'conform-differences.yaml');

interface ConformCliOptions {
  mutant?: string;
  kernelImage?: string;
  modules?: string;
  modelKernel: string;
  accel: string;
  timeout: string;
  expected: string;
  json?: boolean;
}

export function registerConform(program: Command): void {
  program
    .command('conform')
    .description('run scenarios on a real Linux kernel in QEMU (default: Debian\'s 6.12) and diff each step with the model')
    .argument('[files...]', 'scenario YAML files (default: every scenario in scenarios/conform/)')
    .option('--kernel-image <path>', 'boot this kernel (a bzImage) instead of Debian\'s 6.12 package')
    .option('--modules <dir>', 'with --kernel-image: its modules (INSTALL_MOD_PATH, or lib/modules/<release>)')
    .option('--model-kernel <name>', 'the modelled kernel to compare with', 'v7.1')
    .option('--mutant <name>', 'run the model with a design variant (vfio-sim mutants): a broken model must disagree')
    .option('--accel <tcg|kvm>', 'QEMU accelerator', 'tcg')
    .option('--timeout <s>', 'give up on the guest after this many seconds', '600')
    .option('--expected <file>', 'the reviewed list of known differences', CONFORM_DIFFERENCES)
    .option('--json', 'print the report as one JSON document')
    .addOption(devicesOpt())
    .action((files: string[], o: ConformCliOptions) => {
      const log = (s: string) => process.stderr.write(`conform: ${s}\n`);
      try {
        if (o.kernelImage && !o.modules) throw new ConformError('--kernel-image needs --modules (the vfio modules come from there)');
        if (o.modules && !o.kernelImage) throw new ConformError('--modules goes with --kernel-image');
        if (!(o.modelKernel in KERNELS)) throw new ConformError(`unknown --model-kernel ${o.modelKernel} (known: ${Object.keys(KERNELS).join(', ')})`);
        const mutant = o.mutant === undefined ? undefined : findMutant(o.mutant)?.id;
        if (o.mutant !== undefined && !mutant) throw new ConformError(`unknown mutant ${o.mutant} (see vfio-sim mutants)`);
        if (o.accel !== 'tcg' && o.accel !== 'kvm') throw new ConformError(`--accel takes tcg or kvm (got ${o.accel})`);
        const timeoutS = Number(o.timeout);
        if (!(timeoutS > 0)) throw new ConformError(`--timeout takes a number of seconds (got ${o.timeout})`);
        const list = files.length ? files : readdirSync(CONFORM_DIR).filter((f) => f.endsWith('.yaml')).sort().map((f) => relative(process.cwd(), join(CONFORM_DIR, f)));
        const expected = loadExpected(o.expected);
        const scenarios = list.map((f) => loadScenarioFile(f));
        const r = runConform({ scenarios, modelKernel: o.modelKernel, mutant, kernelImage: o.kernelImage, modules: o.modules, accel: o.accel, timeoutS, expected, log });
        if (o.json) printJson(r);
        else process.stdout.write(formatConform(r) + '\n');
        process.exitCode = r.exit;
      } catch (e) {
        if (e instanceof ScenarioError || e instanceof UnknownKernelError || e instanceof ExpectedDataError || e instanceof ConformError) {
          process.stderr.write(`vfio-sim: ${e.message}\n`);
          process.exitCode = 2;
          return;
        }
        if (e instanceof GuestError) {
          process.stderr.write(`vfio-sim conform: ${e.message}\n`);
          process.exitCode = 1;
          return;
        }
        throw e;
      }
    });
}
