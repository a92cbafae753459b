// npm run bench: figures for the simulated v4 fault path, revoke and page-table memory, beside this
// machine's Linux minor-fault rate, then the explorer (DPOR vs naive on the race scenarios, executions
// to catch each mutant), all from one run. Prints; never asserts a timing. Fails (exit 1) only when
// the model did not install what a figure claims to measure.
//
//   npm run bench [-- --pages N] [-- --faults N] [-- --reps N] [-- --quick] [-- --only faults|explore|shapes]
//                 [-- --naive-cap N] [-- --naive-ms N]
import { spawnSync } from 'node:child_process';
import { cpus, release, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { ORDER_NAME, bar0Pieces, hasKernel, bigMapping, censusString, faultRun, kernelChosenVa, pageTableOnly, type FaultRun, type Order, type RevokeRun } from './sim.ts';
import { runLinux } from './linux.ts';
import { runExploreBench } from './explore.ts';
import { runShapesBench } from './shapes.ts';
import { fixed, heading, int, mib, ms, rate, table } from './format.ts';

const CHILD = 'VFIO_SIM_BENCH_CHILD';

// Re-run with --expose-gc (heap figures need a full GC) and room for a million simulated faults.
if (typeof globalThis.gc !== 'function' && !process.env[CHILD]) {
  const r = spawnSync(process.execPath, ['--expose-gc', '--max-old-space-size=8192', ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, [CHILD]: '1' },
  });
  process.exit(r.status ?? 1);
} else {
  await main();
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string, dflt: number) => {
    const i = args.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
    if (i < 0) return dflt;
    const v = args[i].includes('=') ? args[i].split('=')[1] : args[i + 1];
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name}: expected a positive integer, got ${v}`);
    return n;
  };
  const quick = args.includes('--quick');
  const oi = args.findIndex((a) => a === '--only' || a.startsWith('--only='));
  const only = oi < 0 ? null : args[oi].includes('=') ? args[oi].split('=')[1] : args[oi + 1];
  if (only !== null && only !== 'faults' && only !== 'explore' && only !== 'shapes') throw new Error(`--only: expected faults, explore or shapes, got ${only}`);
  const PAGES = opt('pages', quick ? 65536 : 1048576);
  const FAULTS = opt('faults', quick ? 8192 : 65536);
  const REPS = opt('reps', 3);
  const NAIVE_CAP = opt('naive-cap', quick ? 2000 : 20000);
  const NAIVE_MS = opt('naive-ms', quick ? 250 : 2000);
  const t0 = performance.now();
  const out = (s = '') => console.log(s);
  /** peak resident set of this process so far (getrusage ru_maxrss) */
  const peak = (what: string) => out(`  [peak RSS of the bench process after ${what}: ${mib(process.resourceUsage().maxRSS * 1024)}; heapUsed now ${mib(process.memoryUsage().heapUsed)}]`);

  out('vfio-sim benchmark: the series v4 BAR mmap fault path, revoke, page-table memory; the explorer');
  out(`node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? '?'}, Linux ${release()}, ${fixed(totalmem() / 2 ** 30, 1)} GiB RAM, ${new Date().toISOString()}`);
  out(`global.gc: ${typeof globalThis.gc === 'function' ? 'yes' : 'NO (heap figures are noisy)'}; sections: ${only === 'faults' ? '1-4' : only === 'explore' ? '5-7' : only === 'shapes' ? '7' : '1-7'}${quick ? ' [--quick]' : ''}`);
  out('All figures come from this run (single samples unless a median is stated); printed, never asserted.');
  if (only === null || only === 'faults') faultSections();
  if (only !== 'faults') {
    if (only !== 'shapes') runExploreBench({ naiveCap: NAIVE_CAP, naiveMs: NAIVE_MS, out });
    await runShapesBench({ budgetMs: quick ? 10_000 : 60_000, out });
    peak('sections 5-7');
  }
  out(`\ntotal bench time ${fixed((performance.now() - t0) / 1000, 1)} s; peak RSS of the bench process ${mib(process.resourceUsage().maxRSS * 1024)}`);

  function faultSections(): void {
    const REPS1 = quick ? 1 : 3;
    out(`\nSections 1-4. device: h100 profile (BAR0 16 MiB, BAR2 128 GiB, BAR4 32 MiB); checkInvariants: false;`);
    out(`N = ${int(FAULTS)} first-touch faults per order (section 1); P = ${int(PAGES)} pages (sections 2-4).`);
    out('Each simulated load runs the whole path:');
    out('SimKernel.run -> user_access -> do_user_addr_fault (per-VMA lock, retry under mmap_lock) -> handle_mm_fault');
    out('-> vfio_pci_mmap_huge_fault (v4: resv lock, registration, memory_lock, find_pfn) -> vmf_insert_pfn*.');

    // warm the JIT on every order and on both revoke paths before timing anything
    faultRun(0, 4096, false);
    faultRun(9, 2048, false);
    faultRun(18, 256, false);
    bar0Pieces(4 * 4096, 1);
    bigMapping('v7.1', 8192, false, 1);
    bigMapping('series-v4', 8192, false, 1);

    // ---- 1 ----
    out(heading(`1. Simulated faults per second, series v4, one first-touch load per entry (median of ${REPS1} runs)`));
    const runs: Array<FaultRun & { lo: number; hi: number }> = [];
    const median = <T>(xs: T[], key: (x: T) => number) => [...xs].sort((p, q) => key(p) - key(q))[Math.floor(xs.length / 2)];
    // the default (trace off) for every order, then the opt-in trace for 4 KiB entries
    const cases: Array<[Order, boolean]> = [[0, false], [9, false], [18, false], [0, true]];
    for (const [order, trace] of cases) {
      const reps = Array.from({ length: REPS1 }, () => faultRun(order, FAULTS, trace));
      const med = median(reps, (r) => r.ms);
      const rates = reps.map((r) => rate(r.n, r.ms));
      runs.push({ ...med, hitMs: median(reps, (r) => r.hitMs).hitMs, lo: Math.min(...rates), hi: Math.max(...rates) });
    }
    out(table(
      ['<entry', '<Sched.recordTrace', 'N', 'installed (verified)', 'time', 'faults/s', 'min-max faults/s', 'µs/fault', 'steps/fault', 'µs/load, hit', 'retained B/fault', 'sched.tasks after', 'trace records'],
      runs.map((r) => [
        ORDER_NAME[r.order], r.trace ? 'true (option)' : 'false (default)', int(r.n), `${int(r.installed.byOrder[r.order])} x order ${r.order}`, ms(r.ms),
        int(rate(r.n, r.ms)), `${int(r.lo)}-${int(r.hi)}`, fixed((r.ms * 1000) / r.n), fixed(r.stepsPerFault, 1), fixed((r.hitMs * 1000) / r.n),
        fixed(r.retainedBytes, 1), int(r.sched.tasks), int(r.sched.trace),
      ]),
    ));
    out('  installed: leaves found by walking p.proc.mm.pt.entries() over the touched range; the bench fails unless');
    out('  all N are of the expected order (0/9/18), at consecutive VAs, with contiguous aligned PFNs.');
    for (const o of [0, 9, 18] as Order[]) out(`  ${ORDER_NAME[o]}: ${runs.find((r) => r.order === o)!.note}`);
    out('  Sched.recordTrace: false is the default (SimKernel and the scenario runner); the last row opts in (the runner');
    out('  does for counterexample traces), which keeps every step (StepRecord + notes) for the life of the kernel.');
    out('  µs/load, hit: the same N loads again, entries present (an API call without a fault).');
    out('  retained B/fault: heap + ArrayBuffer bytes after the N loads minus before (each after a full GC), per fault: the');
    out('  page-table entries and tables, plus the step records when the trace is on. sched.tasks after / trace records:');
    out('  sched.tasks.length and sched.trace.length after the N loads (SimKernel.run reaps every finished task; its');
    out('  last one stays reachable as sim.lastTask). All per-row figures are the median run\'s, except min-max.');
    const kc = kernelChosenVa(16384);
    out(`  Note: BAR2+4 KiB with addr 0 (kernel-chosen VA 0x${kc.va.toString(16)}, congruent to the offset mod 2 MiB), 16,384`);
    out(`  pages touched installed ${censusString(kc.c)}: a misaligned BAR offset alone does not force PTEs, hence MAP_FIXED.`);

    // ---- 2 / 3 ----
    out(heading(`2. Revoking ${int(PAGES)} 4 KiB entries: pwrite(PCI_COMMAND = 0) on the config region`));
    const a = bigMapping('series-v4', PAGES, true, REPS);
    const b = bar0Pieces(PAGES, REPS);
    const c = bigMapping('v7.1', PAGES, false, REPS);
    // the v4 variant with the whole-file DMABUF zap, when this tree has it
    const fixed4 = hasKernel('series-v4-fixed') ? bigMapping('series-v4-fixed', PAGES, false, REPS) : null;
    const rv: RevokeRun[] = [a, b, c, ...(fixed4 ? [fixed4] : [])];
    out(table(
      ['<kernel / layout', '<mapping', 'DMABUFs', 'entries before', 'entries removed', 'entries after', 'sched steps', '1st revoke', `revoke, median of ${REPS} more`, 'ns/removed entry'],
      rv.map((r) => {
        const removed = r.before.total - r.after.total;
        const sorted = [...r.again].sort((x, y) => x - y);
        const med = sorted.length ? sorted[Math.floor(sorted.length / 2)] : r.revokeMs;
        return [
          r.label, r.layout, int(r.dmabufs), int(r.before.total), int(removed), int(r.after.total), int(r.revokeSteps), ms(r.revokeMs),
          sorted.length ? `${ms(med)} (${fixed(sorted[0], 2)}-${fixed(sorted[sorted.length - 1], 2)})` : 'n/a', removed ? fixed((med * 1e6) / removed, 1) : 'n/a',
        ];
      }),
    ));
    out('  entries: every leaf of the process page table, counted by walking it before and after the pwrite.');
    out('  revoke: wall time of the whole pwrite (config emulation, memory_lock, per-buffer status change and importer');
    out('  drain, zap), after a full GC; the revoke code is JIT-warmed on a small layout first. 1st: right after the');
    out(`  fault-path population (sched.tasks then held ${rv.map((r) => int(r.sched.tasks)).join(' / ')} tasks, in row order). Then ${REPS} more: MEMORY set`);
    out('  again (un-revoke), the same leaves put back with PageTable.insertPte (no faults), revoked again; the bench');
    out('  checks each leaves the same count. ns/removed entry uses that median. Single samples catch GC pauses.');
    for (const r of rv) out(`  ${r.label}: after the revoke, ${r.probe}`);
    if (a.after.total === a.before.total) {
      out('  -> series v4 zaps only DMABUF file offsets [0, size) of each buffer; a BAR2 mmap VMA keeps the region index');
      out('     in vm_pgoff (2 << 28 pages), so its range never meets [0, size) and nothing is zapped: the entries stay');
      out('     and still reach the BAR with memory decode off. BAR0 at offset 0 (vm_pgoff 0) is zapped whole, so the');
      out('     pieces layout is the only v4 layout that measures a real zap; v7.1 zaps the device inode, all BARs.');
    }
    out(fixed4
      ? '  series-v4-fixed: v4 whose set_status zaps the whole DMABUF file (length 0), from this tree\'s variants.'
      : '  (no series-v4-fixed variant in this tree: that row is skipped)');

    out(heading(`3. Memory for ${int(PAGES)} PTEs (series v4, one BAR2 mapping, populated through the fault path)`));
    const m = a.mem!;
    const pto = pageTableOnly(PAGES);
    out(table(
      ['<what', 'heap Δ', 'ArrayBuffer Δ', 'total', 'B/PTE', 'PMD tables', 'PTE tables'],
      [
        ['populated by P first-touch loads (fault path)', mib(m.delta.heap), mib(m.delta.arrayBuffers), mib(m.delta.total), fixed(m.delta.total / PAGES, 1), int(m.tables.pmdTables), int(m.tables.pteTables)],
        ['PageTable alone, insertPte x P (no kernel)', mib(pto.delta.heap), mib(pto.delta.arrayBuffers), mib(pto.delta.total), fixed(pto.delta.total / PAGES, 1), int(pto.tables.pmdTables), int(pto.tables.pteTables)],
        ['Linux x86-64, for reference', '', '', mib(PAGES * 8), '8.0', '', ''],
      ],
    ));
    out(`  heapUsed before populating ${mib(m.before.heap)}, after ${mib(m.after.heap)}; arrayBuffers before ${mib(m.before.arrayBuffers)}, after ${mib(m.after.arrayBuffers)};`);
    out(`  after the P loads sched.tasks held ${int(a.sched.tasks)} tasks and sched.trace ${int(a.sched.trace)} records (recordTrace off, the default).`);
    out('  heap Δ: process.memoryUsage().heapUsed after a full GC (global.gc) minus before; ArrayBuffer Δ: the typed');
    out(`  arrays of the PTE tables (Float64Array pfn + Uint8Array flags, 4,608 B per 512 entries = 9 B/PTE) live outside`);
    out(`  the JS heap. The difference between the first two rows is what the fault path leaves besides the entries.`);
    out('  Linux: a PTE is 8 bytes in a 4 KiB page of 512; the PMD/PUD levels add ~0.2%.');
    peak('sections 1-3');

    // ---- 4 ----
    out(heading(`4. Linux minor faults on this machine vs the simulator, same page count`));
    const lx = runLinux(PAGES, REPS);
    const simRate = rate(PAGES, a.populateMs);
    const rows: string[][] = [
      ['simulator, series v4', int(PAGES), int(PAGES), ms(a.populateMs), int(simRate), int(simRate), '1', '1'],
      ['simulator, v7.1 (no DMABUF in the fault path)', int(PAGES), int(PAGES), ms(c.populateMs), int(rate(PAGES, c.populateMs)), int(rate(PAGES, c.populateMs)), fixed(rate(PAGES, c.populateMs) / simRate), fixed(rate(PAGES, c.populateMs) / simRate)],
    ];
    if ('skipped' in lx) out(`  Linux: skipped (${lx.skipped})`);
    else {
      for (const x of [lx.read, lx.write]) {
        const fr = x.minflt / x.seconds, pr = x.pages / x.seconds;
        rows.push([
          x.mode === 'read' ? 'Linux, read one byte per page (MADV_RANDOM)' : 'Linux, write one byte per page (MADV_RANDOM)',
          int(x.pages), int(x.minflt), ms(x.seconds * 1000), int(fr), int(pr), fixed(fr / simRate, 1), fixed(pr / simRate, 1),
        ]);
      }
    }
    out(table(['<', 'pages', 'faults', 'time', 'faults/s', 'pages/s', 'faults/s ÷ sim v4', 'pages/s ÷ sim v4'], rows));
    out('  simulator rows: the populate loads of section 2/3 (one fault per page, verified); "sim v4" is the first row.');
    if (!('skipped' in lx)) {
      out(`  Linux: bench/minor-fault.c (gcc -O2, .cache/bench/minor-fault) on a ${int(lx.pages)}-page file (${mib(lx.pages * 4096)}), ${lx.fsNote};`);
      out(`  written then read back (${fixed(lx.prepSeconds, 2)} s, untimed), mmap MAP_SHARED, madvise(MADV_RANDOM), one touch per page;`);
      out(`  faults = getrusage ru_minflt delta (major faults: read ${lx.read.majflt}, write ${lx.write.majflt}); median of ${lx.reps} repetitions each:`);
      out(`  (its peak RSS: ${mib(Math.max(...lx.all.map((x) => x.maxrss_kib ?? 0)) * 1024)}, the touched file pages; the file also holds ${mib(lx.pages * 4096)} of tmpfs/page cache while it runs)`);
      for (const mode of ['read', 'write'] as const) out(`    ${mode}: ${lx.all.filter((x) => x.mode === mode).map((x) => `${fixed(x.seconds * 1000, 1)} ms/${int(x.minflt)} faults`).join(', ')}`);
      if (lx.read.minflt < lx.read.pages * 0.9) {
        out(`  Read faults: ${int(lx.read.minflt)} for ${int(lx.read.pages)} pages. MADV_RANDOM stops readahead but not fault-around:`);
        out('  each read fault maps up to fault_around_bytes (64 KiB = 16 pages) already in the page cache. A write fault');
        out('  on a shared mapping (do_shared_fault) never faults around: that row is one fault per page, like the');
        out('  simulator (whose VM_PFNMAP VMAs have no ->map_pages either).');
      }
    }
    peak('section 4');
  }
}
