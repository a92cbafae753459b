// The report page's script (inlined by html.ts): renders the frame chosen with the buttons, the
// keyboard (left/right, Home/End, v for the violation) or a click on a timeline row.
(() => {
  'use strict';
  const data = JSON.parse(document.getElementById('data').textContent);
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const k of kids.flat()) e.append(k instanceof Node ? k : String(k));
    return e;
  };
  const frames = data.frames;
  const bad = frames.findIndex((f) => f.violations.length || (f.result || '').includes('EXPECTATION FAILED'));
  let cur = 0;

  $('verdict').append(el('span', { class: /^(PASS|no violation)/.test(data.verdict) ? 'pass' : 'fail' }, data.verdict), data.schedule ? `  schedule ${data.schedule}` : '', `  (${data.file})`);
  if (bad < 0) $('toviolation').disabled = true;

  // the timeline: one column per thread (swimlanes), a row per frame
  const lanes = data.threads;
  const rows = frames.map((f, i) =>
    el('tr', { id: `f${i}`, class: i === bad ? 'bad' : '', onclick: () => go(i), 'aria-label': `step ${i + 1}: ${f.thread} ${f.label}` },
      el('td', {}, String(f.step)),
      lanes.map((t) => el('td', { class: t === f.thread ? 'act' : '' }, t === f.thread ? [f.label, f.result ? el('div', { class: 'res' }, '= ', f.result) : '', ...f.notes.map((n) => el('div', { class: 'note' }, n)), ...f.violations.map((v) => el('div', { class: 'viol' }, `${v.invariant}: ${v.message}`))] : '')),
    ),
  );
  $('lanes').append(el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'step'), lanes.map((t) => el('th', { scope: 'col' }, t)))), el('tbody', {}, rows)));

  const hex = (n) => '0x' + n.toString(16);
  const big = (s) => BigInt(s);
  /** PFN runs of revoked buffers: an entry mapping one of them is stale */
  const revokedRanges = (st) => st.dmabufs.filter((d) => d.status && d.status !== 'OK').flatMap((d) => (d.ranges || []).map((r) => [big(r.paddr), big(r.paddr) + big(r.len), d.name || `dmabuf${d.id}`]));
  /** the DMABUF whose ranges hold an entry's PFNs (any status), and a colour for each buffer */
  const PALETTE = ['#64b5f6', '#81c784', '#ffb74d', '#ba68c8', '#4db6ac', '#f06292'];
  const bufferOf = (e, st) => {
    const a = big(e.pfn) * 4096n;
    const i = st.dmabufs.findIndex((d) => (d.ranges || []).some((r) => a >= big(r.paddr) && a < big(r.paddr) + big(r.len)));
    return i < 0 ? null : { name: st.dmabufs[i].name || `dmabuf${st.dmabufs[i].id}`, colour: PALETTE[st.dmabufs[i].id % PALETTE.length] };
  };
  const staleOf = (e, revoked) => {
    const a = big(e.pfn) * 4096n, b = a + BigInt(e.count) * (4096n << BigInt(e.order));
    const hit = revoked.find(([lo, hi]) => a < hi && lo < b);
    return hit ? hit[2] : null;
  };

  function render() {
    const f = frames[cur];
    rows.forEach((r, i) => r.classList.toggle('cur', i === cur));
    rows[cur].scrollIntoView({ block: 'nearest' });
    $('pos').textContent = `step ${cur + 1} of ${frames.length}`;
    $('statehead').textContent = `State after step ${f.step} (${f.thread}: ${f.label})`;
    const st = f.state, revoked = revokedRanges(st);
    $('now').replaceChildren(...f.violations.map((v) => el('p', { class: 'viol', role: 'alert' }, `VIOLATION ${v.invariant}: ${v.message}`)));
    $('procs').replaceChildren(...st.processes.map((p) => {
      const lo = Math.min(...p.vmas.map((v) => Number(big(v.start))));
      const hi = Math.max(...p.vmas.map((v) => Number(big(v.end))));
      const strip = el('div', { class: 'strip', role: 'img', 'aria-label': `page table of ${p.name} over its VMAs` });
      for (const e of p.page_table) {
        const a = Number(big(e.va)), len = e.count * 4096 * 2 ** e.order;
        if (!(hi > lo)) break;
        const buf = bufferOf(e, st);
        strip.append(el('div', { class: 'seg' + (staleOf(e, revoked) ? ' stale' : ''), style: `left:${((a - lo) / (hi - lo)) * 100}%;width:${Math.max(0.3, (len / (hi - lo)) * 100)}%${buf && !staleOf(e, revoked) ? `;background:${buf.colour}` : ''}`, title: `${e.va} order ${e.order} x${e.count} -> pfn ${e.pfn}${buf ? ` (${buf.name})` : ''}` }));
      }
      return el('div', {},
        el('h3', {}, `process ${p.name} (pid ${p.pid})`),
        p.vmas.length ? el('table', { 'aria-label': `VMAs of ${p.name}` }, el('tr', {}, ['start', 'end', 'prot', 'pgoff', 'file', 'cache'].map((h) => el('th', {}, h))), p.vmas.map((v) => el('tr', {}, [v.start, v.end, v.prot, v.pgoff, v.file ?? '-', v.cache ?? ''].map((x) => el('td', {}, String(x)))))) : el('p', {}, 'no VMAs'),
        p.vmas.length ? strip : '',
        p.page_table.length
          ? el('table', { 'aria-label': `page table of ${p.name}` }, el('tr', {}, ['va', 'level', 'count', 'pfn', 'write', 'cache', 'buffer', ''].map((h) => el('th', {}, h))),
              p.page_table.map((e) => {
                const s = staleOf(e, revoked), buf = bufferOf(e, st);
                const swatch = buf ? el('span', {}, el('span', { style: `display:inline-block;width:10px;height:10px;margin-right:4px;background:${buf.colour}`, 'aria-hidden': 'true' }), buf.name) : '-';
                return el('tr', { class: s ? 'stale' : '' }, [e.va, e.order === 18 ? 'PUD' : e.order === 9 ? 'PMD' : 'PTE', e.count, e.pfn, e.write ? 'w' : 'r', e.cache, swatch, s ? `STALE: ${s} is revoked` : ''].map((x) => el('td', {}, x instanceof Node ? x : String(x))));
              }))
          : el('p', {}, 'page table: empty'),
      );
    }));
    $('devs').replaceChildren(el('h3', {}, 'devices'), el('table', {}, el('tr', {}, ['name', 'bdf', 'COMMAND', 'hw', 'memory', 'power', 'registration', 'open', 'BARs'].map((h) => el('th', {}, h))),
      st.devices.map((d) => el('tr', {}, [d.name, d.bdf, hex(d.command), hex(d.hw_command), d.memory_enabled ? 'on' : 'OFF', d.power, d.registration, d.open_count, d.bars.map((b) => `BAR${b.index} ${b.size}`).join(', ')].map((x) => el('td', {}, String(x)))))));
    const importers = (d) => (d.importers || []).map((a) => `${a.importer}${a.peer2peer ? ' (p2p)' : ''}${a.iovas ? `: ${a.iovas.map((x) => `IOAS ${x.ioas} ${x.iova}+${x.length}${x.mapped ? '' : ' (unmapped)'}`).join(', ') || 'no IOVA'}${a.revoked ? ', revoked' : ''}` : ''}`).join('; ') || '-';
    $('bufs').replaceChildren(el('h3', {}, 'DMABUFs'), st.dmabufs.length ? el('table', {}, el('tr', {}, ['name', 'status', 'kref', 'file refs', 'mappings', 'ranges', 'importers and IOVAs'].map((h) => el('th', {}, h))),
      st.dmabufs.map((d) => el('tr', {}, [d.name || `dmabuf${d.id}`, d.status ?? '-', d.kref ?? '-', d.file_refs, d.mappings, (d.ranges || []).map((r) => `${r.paddr}+${r.len}`).join(', '), importers(d)].map((x) => el('td', {}, String(x)))))) : el('p', {}, 'none'));
    $('thr').replaceChildren(el('h3', {}, 'threads'), el('table', {}, el('tr', {}, ['thread', 'state', 'operation', 'locks held', 'waits for'].map((h) => el('th', {}, h))),
      f.threads.map((t) => el('tr', {}, [t.name, t.state, t.op ?? '-', t.held.join(', ') || '-', t.waits ?? '-'].map((x) => el('td', {}, String(x)))))));
  }
  function go(i) {
    cur = Math.max(0, Math.min(frames.length - 1, i));
    render();
  }
  $('first').onclick = () => go(0);
  $('prev').onclick = () => go(cur - 1);
  $('next').onclick = () => go(cur + 1);
  $('last').onclick = () => go(frames.length - 1);
  $('toviolation').onclick = () => bad >= 0 && go(bad);
  document.addEventListener('keydown', (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const k = { ArrowRight: cur + 1, ArrowDown: cur + 1, ArrowLeft: cur - 1, ArrowUp: cur - 1, Home: 0, End: frames.length - 1, v: bad }[e.key];
    if (k === undefined || k < 0) return;
    e.preventDefault();
    go(k);
  });
  // served live (vfio-sim serve): kernel and mutant, check with its progress, reload on change
  if (data.live) {
    const L = data.live;
    const sel = (id, label, opts, val) => el('label', {}, label + ' ', el('select', { id, 'aria-label': label }, opts.map((o) => { const x = el('option', { value: o }, o || 'none'); if (o === val) x.selected = true; return x; })));
    const progress = el('span', { id: 'checkprogress', 'aria-live': 'polite' });
    const params = () => `kernel=${encodeURIComponent($('kernel').value)}&mutant=${encodeURIComponent($('mutant').value)}`;
    $('live').append(
      sel('kernel', 'kernel', L.kernels, L.kernel), sel('mutant', 'mutant', ['', ...L.mutants], L.mutant),
      el('button', { id: 'rerun', onclick: () => (location.search = '?' + params()) }, 'run'),
      el('button', { id: 'check', onclick: () => {
        progress.textContent = 'checking...';
        const es = new EventSource('/check?' + params());
        es.addEventListener('progress', (m) => { const p = JSON.parse(m.data).progress; progress.textContent = `${p.executions} executions${p.states !== undefined ? `, ${p.states} states` : ''}${p.pending !== undefined ? `, ${p.pending} pending` : ''}, ${(p.elapsedMs / 1000).toFixed(1)} s`; });
        es.addEventListener('done', (m) => {
          es.close();
          const d = JSON.parse(m.data), v = d.verdict || {};
          progress.textContent = v.error ? `check failed: ${v.error}` : v.violation ? `VIOLATION ${v.violation.invariant} (${v.executions} executions)` : `${v.complete ? 'no violation: every interleaving explored' : 'no violation found (cut short)'} (${v.executions} executions)`;
          if (d.report && v.violation) progress.append(' ', el('a', { href: d.report }, 'open the counterexample'));
        });
      } }, 'check'),
      progress,
    );
    new EventSource('/events').onmessage = () => location.reload();
  }
  go(0);
})();
