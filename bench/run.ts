// npm run bench: figures for the simulated v4 fault path, revoke and page-table memory, beside this
// machine's Linux minor-fault rate, all from one run. Prints; never asserts a timing. Fails (exit 1)
// only when the model did not install what a figure claims to measure.
//
//   npm run bench [-- --pages N] [-- --faults N] [-- --quick]
import { spawnSync } from 'node:child_process';
import { cpus, release, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { ORDER_NAME, bar0Pieces, hasKernel, bigMapping, censusString, faultRun, kernelChosenVa, pageTableOnly, type Order, type RevokeRun } from './sim.ts';
import { runLinux } from './linux.ts';
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
  main();
}

function main(): void {
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
  /** a per-fault byte figure within GC noise of zero prints as 0 */
  const clamp0 = (x: number) => (Math.abs(x) < 16 ? 0 : x);
  const PAGES = opt('pages', quick ? 65536 : 1048576);
  const FAULTS = opt('faults', quick ? 8192 : 65536);
  const REPS = opt('reps', 3);
  const REPS1 = quick ? 1 : 3;
  const t0 = performance.now();
  const out = (s = '') => console.log(s);

  out('vfio-sim benchmark: the series v4 BAR mmap fault path, revoke and page-table memory');
  out(`node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? '?'}, Linux ${release()}, ${fixed(totalmem() / 2 ** 30, 1)} GiB RAM, ${new Date().toISOString()}`);
  out(`device: h100 profile (BAR0 16 MiB, BAR2 128 GiB, BAR4 32 MiB); checkInvariants: false; global.gc: ${typeof globalThis.gc === 'function' ? 'yes' : 'NO (heap figures are noisy)'}`);
  out(`N = ${int(FAULTS)} first-touch faults per order (section 1); P = ${int(PAGES)} pages (sections 2-4)${quick ? ' [--quick]' : ''}`);
  out('All figures come from this run (single samples unless a median is stated); printed, never asserted.');
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
  const runs = [];
  const median = <T>(xs: T[], key: (x: T) => number) => [...xs].sort((p, q) => key(p) - key(q))[Math.floor(xs.length / 2)];
  for (const trace of [false, true]) {
    for (const order of [0, 9, 18] as Order[]) {
      const reps = Array.from({ length: REPS1 }, () => faultRun(order, FAULTS, trace));
      const med = median(reps, (r) => r.ms);
      const rates = reps.map((r) => rate(r.n, r.ms));
      runs.push({ ...med, hitMs: median(reps, (r) => r.hitMs).hitMs, lo: Math.min(...rates), hi: Math.max(...rates) });
    }
  }
  out(table(
    ['<entry', '<trace', 'N', 'installed (verified)', 'time', 'faults/s', 'min-max faults/s', 'µs/fault', 'steps/fault', 'µs/load, hit', 'tasks B/fault', 'trace B/fault'],
    runs.map((r) => [
      ORDER_NAME[r.order], r.trace ? 'on (API default)' : 'off', int(r.n), `${int(r.installed.byOrder[r.order])} x order ${r.order}`, ms(r.ms),
      int(rate(r.n, r.ms)), `${int(r.lo)}-${int(r.hi)}`, fixed((r.ms * 1000) / r.n), fixed(r.stepsPerFault, 1), fixed((r.hitMs * 1000) / r.n), int(clamp0(r.tasksBytes)), int(clamp0(r.traceBytes)),
    ]),
  ));
  out('  installed: leaves found by walking p.proc.mm.pt.entries() over the touched range; the bench fails unless');
  out('  all N are of the expected order (0/9/18), at consecutive VAs, with contiguous aligned PFNs.');
  for (const o of [0, 9, 18] as Order[]) out(`  ${ORDER_NAME[o]}: ${runs.find((r) => r.order === o)!.note}`);
  out('  trace: Sched.recordTrace; createKernel leaves it on, so every step (StepRecord + notes) is kept for the');
  out('  life of the kernel; "off" is what the scenario runner uses. µs/load, hit: the same loads again, entry present.');
  out('  tasks / trace B/fault: heap + ArrayBuffer bytes freed (full GC) by emptying sched.tasks (one finished Task per');
  out('  API call, never dropped) and then sched.trace after the run, per fault (the median run\'s figure).');
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
  out(`  fault-path population (whose ${int(a.mem!.tasks)} finished Tasks, ${mib(a.mem!.tasksBytes)}, are still on the heap). Then ${REPS} more:`);
  out('  MEMORY set again (un-revoke), the same leaves put back with PageTable.insertPte (no faults), revoked again; the');
  out('  bench checks each leaves the same count. ns/removed entry uses that median. Single samples catch GC pauses.');
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
  const perTask = m.tasksBytes / m.tasks;
  out(table(
    ['<what', 'heap Δ', 'ArrayBuffer Δ', 'total', 'B/PTE', 'PMD tables', 'PTE tables'],
    [
      ['populated by first-touch loads (as shipped)', mib(m.delta.heap), mib(m.delta.arrayBuffers), mib(m.delta.total), fixed(m.delta.total / PAGES, 1), int(m.tables.pmdTables), int(m.tables.pteTables)],
      [`  of which sched.tasks (${int(m.tasks)} finished Tasks)`, '', '', mib(m.tasksBytes), fixed(m.tasksBytes / PAGES, 1), '', ''],
      ['  the rest (page table + not-yet-swept residue)', '', '', mib(m.delta.total - m.tasksBytes), fixed((m.delta.total - m.tasksBytes) / PAGES, 1), '', ''],
      ['PageTable alone, insertPte x P (no kernel)', mib(pto.delta.heap), mib(pto.delta.arrayBuffers), mib(pto.delta.total), fixed(pto.delta.total / PAGES, 1), int(pto.tables.pmdTables), int(pto.tables.pteTables)],
      ['Linux x86-64, for reference', '', '', mib(PAGES * 8), '8.0', '', ''],
    ],
  ));
  out(`  heapUsed before populating ${mib(m.before.heap)}, after ${mib(m.after.heap)}; arrayBuffers before ${mib(m.before.arrayBuffers)}, after ${mib(m.after.arrayBuffers)}.`);
  out('  heap Δ: process.memoryUsage().heapUsed after a full GC (global.gc) minus before; ArrayBuffer Δ: the typed');
  out(`  arrays of the PTE tables (Float64Array pfn + Uint8Array flags, 4,608 B per 512 entries = 9 B/PTE) live outside`);
  out(`  the JS heap. sched.tasks: SimKernel.run spawns one Task per API call and Sched never drops finished ones;`);
  out(`  measured by emptying the list after the figures above: ${int(perTask)} B per Task (generator chain, fault records).`);
  out('  Linux: a PTE is 8 bytes in a 4 KiB page of 512; the PMD/PUD levels add ~0.2%.');

  // ---- 4 ----
  out(heading(`4. Linux minor faults on this machine vs the simulator, same page count`));
  const d = bigMapping('series-v4', PAGES, false, -1, 4096);
  const lx = runLinux(PAGES, REPS);
  const simRate = rate(PAGES, a.populateMs);
  const rows: string[][] = [
    ['simulator, series v4 (as shipped)', int(PAGES), int(PAGES), ms(a.populateMs), int(simRate), int(simRate), '1', '1'],
    ['simulator, v7.1 (no DMABUF in the fault path)', int(PAGES), int(PAGES), ms(c.populateMs), int(rate(PAGES, c.populateMs)), int(rate(PAGES, c.populateMs)), fixed(rate(PAGES, c.populateMs) / simRate), fixed(rate(PAGES, c.populateMs) / simRate)],
    ['simulator, series v4, sched.tasks emptied every 4,096 loads (ablation)', int(PAGES), int(PAGES), ms(d.populateMs), int(rate(PAGES, d.populateMs)), int(rate(PAGES, d.populateMs)), fixed(rate(PAGES, d.populateMs) / simRate), fixed(rate(PAGES, d.populateMs) / simRate)],
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
    for (const mode of ['read', 'write'] as const) out(`    ${mode}: ${lx.all.filter((x) => x.mode === mode).map((x) => `${fixed(x.seconds * 1000, 1)} ms/${int(x.minflt)} faults`).join(', ')}`);
    if (lx.read.minflt < lx.read.pages * 0.9) {
      out(`  Read faults: ${int(lx.read.minflt)} for ${int(lx.read.pages)} pages. MADV_RANDOM stops readahead but not fault-around:`);
      out('  each read fault maps up to fault_around_bytes (64 KiB = 16 pages) already in the page cache. A write fault');
      out('  on a shared mapping (do_shared_fault) never faults around: that row is one fault per page, like the');
      out('  simulator (whose VM_PFNMAP VMAs have no ->map_pages either).');
    }
  }
  out(`\ntotal bench time ${fixed((performance.now() - t0) / 1000, 1)} s`);
}
