// vfio-sim diff FILE [--kernels A,B] [--check] [--json]: one scenario on two kernels, every
// user-visible difference step by step, each expected (data/expected-differences.yaml) or flagged.
// Exit 0 with no flagged difference, 1 otherwise, 2 for invalid input.
import { htmlDiff } from '../report/html.ts';
import { devicesOpt, writeOutput } from './options.ts';
import { printJson } from './json.ts';
import type { Command } from 'commander';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { loadScenarioFile, ScenarioError } from '../scenario/loader.ts';
import { UnknownKernelError } from '../kernel/kernel.ts';
import { diffScenario, DiffUsageError, formatDiff, parseKernels, DEFAULT_KERNELS, type DiffReport } from '../diff/diff.ts';
import { ExpectedDataError, loadExpected } from '../diff/expected.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const EXPECTED_DIFFERENCES = join(ROOT, 'data', 'expected-differences.yaml');

export interface DiffCliOptions {
  kernels?: string;
  check?: boolean;
  json?: boolean;
  html?: string;
  expected?: string;
  maxExecutions?: string;
}

/** Load everything and diff; throws the input errors that mean exit 2. */
export function runDiff(file: string, o: DiffCliOptions): DiffReport {
  const kernels = o.kernels !== undefined ? parseKernels(o.kernels) : DEFAULT_KERNELS;
  let maxExecutions: number | undefined;
  if (o.maxExecutions !== undefined) {
    maxExecutions = Number(o.maxExecutions);
    if (!Number.isInteger(maxExecutions) || maxExecutions < 1) throw new DiffUsageError(`--max-executions takes a positive integer (got "${o.maxExecutions}")`);
  }
  const expected = loadExpected(o.expected ?? EXPECTED_DIFFERENCES);
  const scn = loadScenarioFile(file);
  return diffScenario(scn, { kernels, expected, check: o.check, maxExecutions });
}

export function registerDiff(program: Command): void {
  program
    .command('diff')
    .description('run a scenario on two kernels and list every user-visible difference, step by step (exit 1 if one is not an expected difference)')
    .argument('<file>', 'scenario YAML')
    .option('--kernels <a,b>', `the two kernels to compare (default ${DEFAULT_KERNELS.join(',')})`)
    .option('--check', 'also explore both kernels\' interleavings (DPOR) and compare the verdicts')
    .option('--max-executions <n>', 'with --check: stop each exploration after N executions')
    .option('--expected <file>', 'the reviewed expected-differences data file', EXPECTED_DIFFERENCES)
    .option('--json', 'print the report as one JSON document')
    .option('--html <out.html>', 'also write the report as a self-contained HTML page (the kernels side by side)')
    .addOption(devicesOpt())
    .action((file: string, o: DiffCliOptions) => {
      let r: DiffReport;
      try {
        r = runDiff(file, o);
      } catch (e) {
        if (e instanceof ScenarioError || e instanceof UnknownKernelError || e instanceof ExpectedDataError || e instanceof DiffUsageError) {
          process.stderr.write(`vfio-sim: ${e.message}\n`);
          process.exitCode = 2;
          return;
        }
        throw e;
      }
      if (o.html) writeOutput('--html', o.html, htmlDiff(r), 'report');
      if (o.json) printJson(r);
        else process.stdout.write(formatDiff(r) + '\n');
      process.exitCode = r.exit;
    });
}
