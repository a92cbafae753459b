// The HTML report in a real browser (Debian's chromium, driven by playwright-core): the
// counterexample of fault-vs-perm-revoke under mutant M1, stepped to the violation with the
// keyboard; the stale PMD is highlighted and the violation named, the console shows no error and
// the page loads nothing from the network. A screenshot is kept in .cache/. Skipped, with a note,
// where /usr/bin/chromium is missing (.ci/run installs it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'vfio-sim.js');
const CHROMIUM = '/usr/bin/chromium';
/** The page's window, as functions run in the browser see it (the test is type-checked without the DOM library). */
type Win = { marker?: number; document: { getElementById(id: string): { textContent: string | null } | null } };

test('check --html: the M1 counterexample steps to the stale PMD in Chromium, from disk, offline', { timeout: 120_000, skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} missing (apt-get install chromium)` }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vfio-sim-html-'));
  const out = join(dir, 'cex.html');
  const r = spawnSync(process.execPath, [BIN, 'check', 'scenarios/races/fault-vs-perm-revoke.yaml', '--mutant', 'M1', '--html', out], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  assert.ok(statSync(out).size < 512 * 1024, 'small enough to attach to a mail');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  try {
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('request', (q) => !q.url().startsWith('file:') && problems.push(`network: ${q.url()}`));
    await page.goto(pathToFileURL(out).href);
    assert.match(await page.textContent('#pos') ?? '', /^step 1 of \d+$/);
    assert.equal(await page.locator('tr.stale').count(), 0, 'nothing stale at the start');
    // the keyboard: next, back, then v to the violation
    await page.keyboard.press('ArrowRight');
    assert.match(await page.textContent('#pos') ?? '', /^step 2 of/);
    await page.keyboard.press('ArrowLeft');
    assert.match(await page.textContent('#pos') ?? '', /^step 1 of/);
    await page.keyboard.press('v');
    const alert = page.getByRole('alert');
    assert.match(await alert.textContent() ?? '', /VIOLATION no-stale-pte: mm1 va 0x[0-9a-f]+ -> pfn 0x[0-9a-f]+ \(order 9\)/);
    const stale = page.locator('tr.stale');
    assert.equal(await stale.count(), 1, 'the stale PMD is highlighted');
    assert.match(await stale.textContent() ?? '', /PMD.*STALE: .* is revoked/);
    assert.match(await page.textContent('#verdict') ?? '', /VIOLATION no-stale-pte/);
    // the violating row is marked in the swimlanes, and is the current one
    assert.equal(await page.locator('tr.bad.cur').count(), 1);
    mkdirSync(join(ROOT, '.cache'), { recursive: true });
    await page.screenshot({ path: join(ROOT, '.cache', 'report-counterexample.png'), fullPage: true });
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('vfio-sim serve: the quickstart page live; check from the page with a mutant shows its verdict; an edit reloads the page', { timeout: 120_000, skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} missing (apt-get install chromium)` }, async () => {
  const { serve } = await import('../src/report/serve.ts');
  const dir = mkdtempSync(join(tmpdir(), 'vfio-sim-serve-'));
  const file = join(dir, 'quickstart.yaml');
  copyFileSync(join(ROOT, 'scenarios', 'quickstart.yaml'), file);
  let srv: { close(): void } | undefined;
  const url = await new Promise<string>((resolve, reject) => {
    srv = serve(file, { port: 0, host: '127.0.0.1', onListen: resolve, onError: reject });
  });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  try {
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('request', (q) => !q.url().startsWith(url) && problems.push(`network: ${q.url()}`));
    await page.goto(url);
    assert.match(await page.textContent('h1') ?? '', /run quickstart on series-v8/);
    assert.match(await page.textContent('#verdict') ?? '', /^PASS/);
    // check from the page: series-v4 with the no-zap mutant finds the stale entry
    await page.selectOption('#kernel', 'series-v4');
    await page.selectOption('#mutant', 'no-zap');
    await page.click('#check');
    await page.waitForFunction(() => /VIOLATION|no violation|failed/.test((globalThis as unknown as Win).document.getElementById('checkprogress')?.textContent ?? ''), undefined, { timeout: 60_000 });
    assert.match(await page.textContent('#checkprogress') ?? '', /VIOLATION no-stale-pte/);
    await page.click('#checkprogress a');
    await page.waitForURL(/\/report\/\d+$/);
    assert.match(await page.textContent('#verdict') ?? '', /VIOLATION no-stale-pte/);
    // an edit of the scenario reloads the page, which then shows the new scenario
    await page.goto(url);
    await page.evaluate(() => void ((globalThis as unknown as Win).marker = 1));
    writeFileSync(file, readFileSync(file, 'utf8').replace(/^name: quickstart$/m, 'name: quickstart-edited'));
    await page.waitForFunction(() => !(globalThis as unknown as Win).marker, undefined, { timeout: 10_000 });
    await page.waitForSelector('h1');
    assert.match(await page.textContent('h1') ?? '', /quickstart-edited/);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    srv?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
