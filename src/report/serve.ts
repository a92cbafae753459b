// vfio-sim serve [FILE]: the report page of a scenario, live, on 127.0.0.1 (another address only
// when asked with --host). The page reloads when the scenario file changes, lets the user pick the
// kernel and the mutant, and runs `check` (a child process of this CLI, so the server stays
// responsive) with its progress streamed to the page, then shows the verdict's report.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, watch } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kernelFor, loadScenarioFile, ScenarioError } from '../scenario/loader.ts';
import { KERNELS } from '../kernel/variants.ts';
import { MUTANTS, findMutant } from '../explore/mutants.ts';
import { esc, htmlReport, reportData } from './html.ts';

const BIN = fileURLToPath(new URL('../../bin/vfio-sim.js', import.meta.url));

export interface ServeOptions {
  port: number;
  host: string;
  /** called once the server listens, with its URL */
  onListen?: (url: string) => void;
  /** called when the server cannot listen (the port is taken, the address is not this machine's) */
  onError?: (e: Error) => void;
}

/** The page of `file` as run on a kernel and mutant, with the live controls. */
function page(file: string, kernel: string | undefined, mutant: string | undefined): string {
  const scn = loadScenarioFile(file);
  const m = mutant && findMutant(mutant) ? findMutant(mutant)!.id : undefined;
  const k = kernel && Object.hasOwn(KERNELS, kernel) && scn.kernels.includes(kernel) ? kernel : kernelFor(scn);
  const data = reportData(scn, { kind: 'run', kernel: k, mutant: m, granularity: 'op', verdict: '' });
  const failed = data.frames.some((f) => f.violations.length || (f.result ?? '').includes('EXPECTATION FAILED'));
  data.verdict = failed ? 'FAIL: see the marked step' : `PASS: ${data.frames.length} step(s)`;
  return htmlReport({ ...data, live: { kernels: scn.kernels, mutants: MUTANTS.map((x) => x.id), kernel: k, mutant: m ?? '' } });
}

const errorPage = (e: unknown) => `<!doctype html><html lang="en"><meta charset="utf-8"><title>vfio-sim: invalid scenario</title><body><h1>The scenario does not load</h1><pre role="alert">${esc(String(e instanceof Error ? e.message : e))}</pre><p>The page reloads when the file changes.</p><script>new EventSource('/events').onmessage = () => location.reload();</script></body></html>`;

export function serve(file: string, opts: ServeOptions): { close(): void } {
  const listeners = new Set<ServerResponse>();
  const reports = new Map<string, string>();
  const work = mkdtempSync(join(tmpdir(), 'vfio-sim-serve-'));
  let timer: NodeJS.Timeout | undefined;
  // editors write a file in several steps: tell the pages once it settles
  const watcher = watch(file, () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      for (const r of listeners) r.write('data: changed\n\n');
    }, 150);
  });

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const q = (k: string) => url.searchParams.get(k) || undefined;
    const html = (code: number, body: string) => {
      res.writeHead(code, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(body);
    };
    if (url.pathname === '/') {
      try {
        return html(200, page(file, q('kernel'), q('mutant')));
      } catch (e) {
        if (e instanceof ScenarioError) return html(200, errorPage(e));
        return html(500, errorPage(e));
      }
    }
    if (url.pathname === '/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      res.write(': watching\n\n');
      listeners.add(res);
      req.on('close', () => listeners.delete(res));
      return;
    }
    if (url.pathname === '/check') {
      // the check runs in a child process; its progress and verdict stream to the page
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      const id = String(reports.size + 1);
      const out = join(work, `check-${id}.html`);
      const args = [BIN, 'check', file, '--json', '--progress-json', '--html', out, '--no-compare'];
      const kernel = q('kernel'), mutant = q('mutant');
      if (kernel && Object.hasOwn(KERNELS, kernel)) args.push('--kernel', kernel);
      if (mutant && findMutant(mutant)) args.push('--mutant', mutant);
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '', errs = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d));
      child.stderr.on('data', (d: Buffer) => {
        for (const line of String(d).split('\n')) {
          if (line.startsWith('{"progress"')) res.write(`event: progress\ndata: ${line}\n\n`);
          else if (line.trim()) errs += line + '\n';
        }
      });
      req.on('close', () => child.exitCode === null && child.kill());
      child.on('close', (code) => {
        let verdict: unknown = null;
        try {
          verdict = JSON.parse(stdout);
        } catch {
          verdict = { error: errs.trim() || `check exited ${code}` };
        }
        try {
          reports.set(id, readFileSync(out, 'utf8'));
        } catch {
          // no report: the check did not get that far (its error is in the verdict)
        }
        res.write(`event: done\ndata: ${JSON.stringify({ exit: code, report: reports.has(id) ? `/report/${id}` : null, verdict })}\n\n`);
        res.end();
      });
      return;
    }
    const m = /^\/report\/(\d+)$/.exec(url.pathname);
    if (m && reports.has(m[1])) return html(200, reports.get(m[1])!);
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  });
  server.on('error', (e) => {
    watcher.close();
    rmSync(work, { recursive: true, force: true });
    opts.onError?.(e);
  });
  server.listen(opts.port, opts.host, () => {
    const a = server.address();
    const port = typeof a === 'object' && a ? a.port : opts.port;
    opts.onListen?.(`http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}/`);
  });
  return {
    close() {
      watcher.close();
      for (const r of listeners) r.end();
      server.closeAllConnections?.();
      server.close();
      rmSync(work, { recursive: true, force: true });
    },
  };
}
