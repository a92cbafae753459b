// The vfio-sim command.
import { Command, Option } from 'commander';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { loadScenarioFile, ScenarioError } from '../scenario/loader.ts';
import { formatTrace, runScenario } from '../scenario/report.ts';
import { PROFILES } from '../kernel/pci/profiles.ts';
import { KERNELS, DEFAULT_KERNEL } from '../kernel/variants.ts';
import { KconfigError, resolveKconfig, USER_SYMBOLS } from '../kernel/kconfig.ts';
import { UnknownKernelError } from '../kernel/kernel.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DEFAULT_SCENARIO = join(ROOT, 'scenarios', 'quickstart.yaml');

/** Exit 2 with the message for anything wrong with the input; never a stack trace. */
function invalid(e: unknown): never {
  if (e instanceof ScenarioError || e instanceof KconfigError || e instanceof UnknownKernelError) {
    process.stderr.write(`vfio-sim: ${e.message}\n`);
    process.exit(2);
  }
  throw e;
}

export function main(argv: string[]): void {
  const program = new Command();
  program.name('vfio-sim').description('An executable model of Linux VFIO-PCI BAR mmap through DMABUFs.').showHelpAfterError();
  const kernelOpt = () => new Option('--kernel <name>', 'the modelled kernel').choices(Object.keys(KERNELS)).default(DEFAULT_KERNEL);

  program
    .command('run')
    .description('run a scenario and print every step, fault and finding (default: the bundled quickstart)')
    .argument('[file]', 'scenario YAML', DEFAULT_SCENARIO)
    .option('--json', 'print the result as one JSON document')
    .addOption(kernelOpt())
    .option('--mutant <name>', 'run a named design variant')
    .option('--final', 'also print the final state (page tables, DMABUFs, devices)')
    .action((file: string, o: { json?: boolean; kernel: string; mutant?: string; final?: boolean }) => {
      let result;
      let scn;
      try {
        scn = loadScenarioFile(file);
        result = runScenario(scn, { kernel: o.kernel, mutant: o.mutant }).result;
      } catch (e) {
        invalid(e);
      }
      if (o.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
      else {
        process.stdout.write(formatTrace(scn, result, process.stdout.isTTY) + '\n');
        if (o.final) process.stdout.write(JSON.stringify(result.final, null, 2) + '\n');
        for (const p of result.problems) process.stderr.write(`  ${p}\n`);
      }
      process.exitCode = result.exit;
    });

  program
    .command('devices')
    .description('list the example device profiles (use with "profile:" in a scenario)')
    .option('--json', 'machine-readable')
    .action((o: { json?: boolean }) => {
      if (o.json) return void process.stdout.write(JSON.stringify(PROFILES, null, 2) + '\n');
      for (const p of PROFILES) {
        process.stdout.write(`${p.id.padEnd(8)} ${p.title}\n`);
        for (const b of p.desc.bars) process.stdout.write(`         BAR${b.index}: ${fmtSize(b.size)}, ${b.bits}-bit${b.prefetchable ? ' prefetchable' : ''}\n`);
        if (p.desc.msix) process.stdout.write(`         MSI-X: ${p.desc.msix.entries} entries in BAR${p.desc.msix.bar} at 0x${p.desc.msix.offset.toString(16)}\n`);
        process.stdout.write(`         QEMU twin: ${p.qemu ?? 'none'}\n         source: ${p.source}\n`);
      }
    });

  program
    .command('kernels')
    .description('list the modelled kernels')
    .action(() => {
      for (const k of Object.values(KERNELS)) process.stdout.write(`${k.name.padEnd(10)}${k.name === DEFAULT_KERNEL ? ' (default)' : '          '} ${k.description}\n`);
    });

  program
    .command('config')
    .description('print the resolved Kconfig for the given symbols, e.g. vfio-sim config PCI_P2PDMA=n')
    .argument('[symbols...]', 'SYMBOL=y|n (or thp=always|madvise|never)')
    .action((syms: string[]) => {
      const input: Record<string, string> = {};
      for (const s of syms) {
        const [k, v] = s.split('=');
        input[k] = v;
      }
      try {
        const c = resolveKconfig(input);
        for (const s of USER_SYMBOLS) process.stdout.write(`${s.padEnd(26)} ${String(c[s] === true ? 'y' : c[s] === false ? 'n' : c[s])}${s in input ? '  (set)' : ''}\n`);
      } catch (e) {
        invalid(e);
      }
    });

  program.parse(argv);
}

function fmtSize(n: number): string {
  for (const [u, s] of [[2 ** 30, 'GiB'], [2 ** 20, 'MiB'], [2 ** 10, 'KiB']] as const) if (n >= u && n % u === 0) return `${n / u} ${s}`;
  return `${n} B`;
}
