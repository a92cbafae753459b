// vfio-sim diff FILE... [--kernels A,B] [--check] [--json]: a scenario on two kernels, every
// user-visible difference step by step, each expected (data/expected-differences.yaml) or flagged;
// with several files or a directory, a line per scenario and the reviewed entries that matched.
// Exit 0 with no flagged difference, 1 otherwise, 2 for invalid input.
import { htmlDiff } from '../report/html.ts';
import { devicesOpt, ScenarioFilesError, scenarioFiles, writeOutput } from './options.ts';
import { printJson } from './json.ts';
import type { Command } from 'commander';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { loadScenarioFile, ScenarioError } from '../scenario/loader.ts';
import { UnknownKernelError } from '../kernel/kernel.ts';
import { diffScenario, DiffUsageError, formatDiff, formatDiffSummary, parseKernels, DEFAULT_KERNELS, type DiffReport } from '../diff/diff.ts';
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
  return runDiffs([file], o).reports[0];
}

/**
 * Diff several scenarios. With more than one, a scenario whose `kernels:` does not list both is
 * left out (its expect: lines are not written for the other), as the test suite does.
 */
export function runDiffs(files: string[], o: DiffCliOptions): { reports: DiffReport[]; skipped: Array<{ file: string; kernels: string[] }>; kernels: [string, string] } {
  const kernels = o.kernels !== undefined ? parseKernels(o.kernels) : DEFAULT_KERNELS;
  let maxExecutions: number | undefined;
  if (o.maxExecutions !== undefined) {
    maxExecutions = Number(o.maxExecutions);
    if (!Number.isInteger(maxExecutions) || maxExecutions < 1) throw new DiffUsageError(`--max-executions takes a positive integer (got "${o.maxExecutions}")`);
  }
  const expected = loadExpected(o.expected ?? EXPECTED_DIFFERENCES);
  const reports: DiffReport[] = [], skipped: Array<{ file: string; kernels: string[] }> = [];
  for (const file of files) {
    const scn = loadScenarioFile(file);
    if (files.length > 1 && !kernels.every((k) => scn.kernels.includes(k))) skipped.push({ file, kernels: scn.kernels });
    else reports.push(diffScenario(scn, { kernels, expected, check: o.check, maxExecutions }));
  }
  return { reports, skipped, kernels };
}

export function registerDiff(program: Command): void {
  program
    .command('diff')
    .description('run a scenario on two kernels and list every user-visible difference, step by step (exit 1 if one is not an expected difference); with several files or a directory, a line each and the reviewed differences that matched')
    .argument('<files...>', 'scenario YAML files, or directories of them')
    .option('--kernels <a,b>', `the two kernels to compare (default ${DEFAULT_KERNELS.join(',')})`)
    .option('--check', 'also explore both kernels\' interleavings (DPOR) and compare the verdicts')
    .option('--max-executions <n>', 'with --check: stop each exploration after N executions')
    .option('--expected <file>', 'the reviewed expected-differences data file', EXPECTED_DIFFERENCES)
    .option('--json', 'print the report as one JSON document (an array of them for several scenarios)')
    .option('--html <out.html>', 'also write the report as a self-contained HTML page (the kernels side by side; one scenario)')
    .addOption(devicesOpt())
    .action((files: string[], o: DiffCliOptions) => {
      let d: ReturnType<typeof runDiffs>;
      try {
        const paths = scenarioFiles(files);
        if (o.html && paths.length > 1) throw new DiffUsageError('--html shows one scenario: name one file');
        d = runDiffs(paths, o);
      } catch (e) {
        if (e instanceof ScenarioError || e instanceof UnknownKernelError || e instanceof ExpectedDataError || e instanceof DiffUsageError || e instanceof ScenarioFilesError) {
          process.stderr.write(`vfio-sim: ${e.message}\n`);
          process.exitCode = 2;
          return;
        }
        throw e;
      }
      const single = files.length === 1 && d.reports.length === 1 && !d.skipped.length && files[0].match(/\.ya?ml$/);
      if (single) {
        const r = d.reports[0];
        if (o.html) writeOutput('--html', o.html, htmlDiff(r), 'report');
        if (o.json) printJson(r);
        else process.stdout.write(formatDiff(r) + '\n');
        process.exitCode = r.exit;
        return;
      }
      if (o.json) printJson(d.reports);
      else process.stdout.write(formatDiffSummary(d.reports, d.skipped, d.kernels) + '\n');
      process.exitCode = d.reports.some((r) => r.exit) ? 1 : 0;
    });
}
