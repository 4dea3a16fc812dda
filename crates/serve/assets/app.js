// simsweep dashboard: the pages (sweeps, a sweep, a run), their state in the URL, and live
// updates. Reads the JSON API of `simsweep serve` (docs/api.md); draws with chart.js.
'use strict';

const POLL_MS = 1000;
const STATUSES = ['pending', 'running', 'done', 'failed', 'diverged', 'cancelled', 'pruned'];
const CHARTS = [
  { kind: 'curves', title: 'Learning curves', zoom: true, metric: true },
  { kind: 'final', title: 'Final / best value against a key', metric: true },
  { kind: 'align-uniform', title: 'Alignment and uniformity' },
  { kind: 'spectrum', title: 'Singular-value spectrum' },
  { kind: 'gradients', title: 'Gradient components', zoom: true },
  { kind: 'parallel', title: 'Parallel coordinates', metric: true },
];

const $ = (sel, root) => (root || document).querySelector(sel);
const app = document.getElementById('app');
let page = null; // { stop() } of the page on screen
let timer = null;

function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) {
    const v = attrs[k];
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of kids.flat()) if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

async function api(path) {
  const r = await fetch(path, { headers: { Accept: 'application/json' } });
  let body = null;
  try { body = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) {
    const e = new Error((body && body.error) || `${r.status} ${r.statusText}`);
    e.status = r.status;
    throw e;
  }
  return body;
}

// ------------------------------------------------------------------------------------------
// The URL: #/, #/sweep/NAME?k=v…, #/run/ID?k=v…

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, q: new URLSearchParams(query || '') };
}

function setQuery(q) {
  const { parts } = parseHash();
  const path = '#/' + parts.map(encodeURIComponent).join('/');
  const s = q.toString();
  history.replaceState(null, '', path + (s ? '?' + s : ''));
}

function link(parts, q) {
  const s = q ? new URLSearchParams(q).toString() : '';
  return '#/' + parts.map(encodeURIComponent).join('/') + (s ? '?' + s : '');
}

function route() {
  if (page) page.stop();
  clearTimeout(timer);
  const { parts, q } = parseHash();
  app.innerHTML = '';
  if (parts[0] === 'sweep' && parts[1]) page = sweepPage(parts[1], q);
  else if (parts[0] === 'run' && parts[1]) page = runPage(parts[1], q);
  else page = sweepsPage();
}

// Links change the fragment (hashchange); the page's own state changes replace it in place
// (history.replaceState), which fires nothing.
window.addEventListener('hashchange', route);

// Poll `fn(alive)` every POLL_MS until the page changes (`alive()` turns false then: a tick
// still under way checks it after each wait); errors show in `status` and polling goes on.
function poller(fn, status) {
  let stopped = false;
  let t = null;
  const alive = () => !stopped;
  const tick = async () => {
    if (stopped) return;
    try {
      await fn(alive);
      if (status && alive()) status.textContent = '';
    } catch (e) {
      if (status && alive()) status.textContent = `update failed: ${e.message}`;
    }
    if (!stopped) t = setTimeout(tick, POLL_MS);
  };
  tick();
  return { stop() { stopped = true; clearTimeout(t); } };
}

function badge(status, title) {
  return h('span', { class: `badge st-${status}`, title }, status);
}

function progress(done, total) {
  const f = total ? Math.min(1, done / total) : 0;
  return h('span', { class: 'progress', title: total ? `${done} of ${total} steps` : `${done} steps` },
    h('span', { class: 'bar', style: `width:${(f * 100).toFixed(1)}%` }));
}

function fmtVal(v) {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'number') return SimChart.fmt(v);
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function csvCell(v) {
  const s = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function downloadCsv(name, header, rows) {
  const text = [header, ...rows].map(r => r.map(csvCell).join(',')).join('\n') + '\n';
  SimChart.download(name, new Blob([text], { type: 'text/csv' }));
}

// ------------------------------------------------------------------------------------------
// Sweeps

function sweepsPage() {
  document.title = 'simsweep — sweeps';
  const status = h('div', { class: 'status-line' });
  const body = h('div', {});
  app.append(h('h1', {}, 'Sweeps'), status, body);
  return poller(async () => {
    const d = await api('/api/sweeps');
    body.innerHTML = '';
    if (!d.sweeps.length) {
      body.append(h('p', {}, `No sweeps in ${d.database} yet: record one with simsweep plan FILE.`));
      return;
    }
    const rows = d.sweeps.map(s => h('tr', { 'data-sweep': s.name },
      h('td', {}, h('a', { href: link(['sweep', s.name]) }, s.name)),
      h('td', {}, s.description),
      h('td', { class: 'num' }, s.runs),
      h('td', {}, STATUSES.filter(k => s.status[k]).map(k => [badge(k), ` ${s.status[k]} `])),
      h('td', {}, progress(s.steps, s.total_steps), ` ${s.finished}/${s.runs} runs ended`),
      h('td', {}, s.savings ? s.savings.line : ''),
      h('td', { class: 'muted' }, s.updated_at)));
    body.append(h('table', { class: 'grid' },
      h('thead', {}, h('tr', {}, ['sweep', 'description', 'runs', 'status', 'progress', 'early stopping', 'last activity'].map(c => h('th', {}, c)))),
      h('tbody', {}, rows)), h('p', { class: 'muted' }, `database: ${d.database}`));
  }, status);
}

// ------------------------------------------------------------------------------------------
// A sweep

function sweepPage(name, q0) {
  document.title = `simsweep — ${name}`;
  let q = q0;
  let sweep = null;
  let runs = null;
  let version = null;
  let runsAsked = 0; // answers to older run-table requests are dropped
  let shown = { metrics: null, search: null }; // what the controls and decisions were built from
  const charts = {}; // kind → {card, host, data, error}
  const overlayCache = new Map(); // run|metric|from|to → points
  const status = h('div', { class: 'status-line' });
  const head = h('div', { class: 'sweep-head' });
  const controls = h('div', { class: 'controls' });
  const failures = h('div', { class: 'failures' });
  const tableBox = h('div', { class: 'table-box' });
  const chartBox = h('div', { class: 'charts' });
  const decisionsBox = h('div', {});
  app.append(h('p', {}, h('a', { href: '#/' }, '← all sweeps')), head, status, failures, controls, tableBox, chartBox, decisionsBox);

  const get = (k, d) => q.get(k) || d;
  const selected = () => new Set((q.get('sel') || '').split(',').filter(Boolean));
  const hidden = kind => new Set((q.get(`hide.${kind}`) || '').split('|').filter(Boolean));
  const filterQuery = () => {
    const p = new URLSearchParams();
    for (const [k, v] of q) if (k.startsWith('w.') && v) p.append('where', `${k.slice(2)}=${v}`); // v: the value as `where` takes it
    if (q.get('status')) p.set('status', q.get('status'));
    return p;
  };
  const update = (changes, redraw) => {
    for (const k in changes) { if (changes[k] === null || changes[k] === '') q.delete(k); else q.set(k, changes[k]); }
    setQuery(q);
    // A new filter: the table's rows are asked again at once (the sweep's version did not move).
    if (Object.keys(changes).some(k => k === 'status' || k.startsWith('w.'))) {
      const n = ++runsAsked;
      api(`/api/sweeps/${encodeURIComponent(name)}/runs?${filterQuery()}`).then(r => { if (n === runsAsked) { runs = r; renderTable(); } }).catch(e => { status.textContent = e.message; });
    }
    if (redraw === 'table') renderTable();
    else if (redraw === 'charts') { renderTable(); loadCharts(); }
    else if (redraw !== false) { renderControls(); renderTable(); loadCharts(); }
  };

  function defaultMetric() {
    const names = sweep.metrics.filter(m => m.layers.includes(-1)).map(m => m.name);
    for (const m of ['stsb_dev', 'loss']) if (names.includes(m)) return m;
    return names[0] || 'loss';
  }

  function renderHead() {
    const c = sweep.counts;
    head.innerHTML = '';
    head.append(...[h('h1', {}, sweep.name), sweep.description ? h('p', {}, sweep.description) : null,
      h('div', { class: 'counts' }, STATUSES.filter(k => c.status[k]).map(k => h('span', { class: 'count', 'data-status': k }, badge(k), ` ${c.status[k]}`)),
        ' ', progress(c.steps, c.total_steps), ` ${c.steps}${c.total_steps ? ' / ' + c.total_steps : ''} steps · ${c.finished}/${c.runs} runs ended`),
      c.savings ? h('p', { class: 'savings' }, c.savings.line, sweep.search.decisions ? ` · ${sweep.search.decisions} decisions (below)` : '') : null].filter(Boolean));
    const fp = sweep.fingerprints;
    if (fp.groups.length > 1) {
      head.append(h('p', { class: 'warn' }, `These runs were computed in ${fp.groups.length} different environments (differing: ${fp.differ.join(', ')}); compare their scores with care.`));
    } else if (fp.groups.length === 1) {
      const f = fp.groups[0].fingerprint;
      head.append(h('p', { class: 'muted' }, `fingerprint: ${['simsweep', 'libtorch', 'device', 'precision', 'threads'].filter(k => f[k] !== undefined).map(k => `${k} ${f[k]}`).join(' · ')}`));
    }
  }

  function select(label, key, options, value, onChange) {
    const s = h('select', { 'data-key': key, onchange: e => onChange(e.target.value) },
      options.map(o => h('option', { value: o[0], selected: o[0] === value }, o[1])));
    return h('label', {}, label, ' ', s);
  }

  function renderControls() {
    controls.innerHTML = '';
    const keys = [...sweep.swept_keys, 'seed'];
    const own = sweep.metrics.filter(m => m.layers.includes(-1)).map(m => m.name);
    const metric = get('metric', defaultMetric());
    controls.append(
      select('metric', 'metric', own.map(m => [m, m]), metric, v => update({ metric: v, from: null, to: null })),
      select('colour by', 'color', [['', '(default)'], ...keys.map(k => [k, k])], get('color', ''), v => update({ color: v })),
      select('facet by', 'facet', [['', '(none)'], ...keys.map(k => [k, k])], get('facet', ''), v => update({ facet: v })),
      select('x (final)', 'x', [['', '(default)'], ...keys.map(k => [k, k])], get('x', ''), v => update({ x: v })),
      select('mode', 'mode', [['best', 'best'], ['final', 'final']], get('mode', 'best'), v => update({ mode: v })),
      h('label', {}, 'smooth ', h('input', { type: 'number', min: 0, max: 999, value: get('smooth', '0'), style: 'width:4em', onchange: e => update({ smooth: e.target.value === '0' ? null : e.target.value }) })),
      q.get('from') || q.get('to') ? h('button', { onclick: () => update({ from: null, to: null }) }, `steps ${get('from', '…')}–${get('to', '…')} ✕`) : h('span', { class: 'muted' }, 'drag on a step axis to zoom'),
      h('br'),
      h('span', { class: 'muted' }, 'filter: '),
      ...sweep.swept_keys.concat(['seed']).map(k => select(k, `w.${k}`, [['', 'any'], ...sweep.filters[k].map(f => [f.value, f.label])], get(`w.${k}`, ''), v => update({ [`w.${k}`]: v }))),
      select('status', 'status', [['', 'any'], ...STATUSES.map(s => [s, s])], get('status', ''), v => update({ status: v })),
      h('label', {}, h('input', { type: 'checkbox', checked: q.get('agg') === '1', onchange: e => update({ agg: e.target.checked ? '1' : null }, 'table') }), ' aggregate seeds'),
      h('button', { onclick: () => update({ sel: null }, 'charts'), disabled: !selected().size }, `clear selection (${selected().size})`),
      h('button', { onclick: () => navigator.clipboard && navigator.clipboard.writeText(location.href) }, 'copy link'));
  }

  function renderFailures() {
    failures.innerHTML = '';
    for (const r of runs.runs.filter(r => r.status === 'failed' || r.status === 'diverged')) {
      failures.append(h('div', { class: 'error', 'data-run': r.run_id }, h('a', { href: link(['run', r.run_id]) }, r.run_id), ` ${r.status} at step ${r.step ?? '–'}: ${r.error || ''}`));
    }
  }

  // The run table, or its seed aggregation (the groups of `best`).
  async function renderTable() {
    if (!runs) return;
    if (q.get('agg') === '1') return renderGroups();
    const keys = runs.keys;
    const heads = runs.headlines.flatMap(x => x.with_step ? [x.column, `${x.column}_step`] : [x.column]);
    const cols = ['run_id', ...keys, 'seed', 'status', 'step', ...heads];
    const sel = selected();
    const value = (r, c) => c === 'run_id' ? r.run_id : keys.includes(c) ? r.params[c] : c === 'seed' ? r.seed : c === 'status' ? r.status : c === 'step' ? r.step : r.scores[c];
    const [sc, dir] = (q.get('sort') || '').split(':');
    const rows = runs.runs.slice();
    if (cols.includes(sc)) {
      rows.sort((a, b) => {
        const x = value(a, sc), y = value(b, sc);
        if (x === y) return 0;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        const o = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
        return dir === 'desc' ? -o : o;
      });
    }
    const th = c => h('th', { class: 'sortable', 'data-col': c, onclick: () => update({ sort: `${c}:${sc === c && dir !== 'desc' ? 'desc' : 'asc'}` }, 'table') }, c, sc === c ? (dir === 'desc' ? ' ▼' : ' ▲') : '');
    const toggle = id => {
      const s = selected();
      if (s.has(id)) s.delete(id); else s.add(id);
      update({ sel: [...s].join(',') }, false);
      renderControls(); renderTable(); redrawCharts();
    };
    const body = rows.map(r => h('tr', { 'data-run': r.run_id, class: sel.has(r.run_id) ? 'selected' : null },
      h('td', {}, h('input', { type: 'checkbox', checked: sel.has(r.run_id), onchange: () => toggle(r.run_id), title: 'overlay this run in the charts' })),
      cols.map(c => {
        if (c === 'run_id') return h('td', { class: 'mono' }, h('a', { href: link(['run', r.run_id]) }, r.run_id));
        if (c === 'status') return h('td', {}, badge(r.status, r.error || null));
        if (c === 'step') return h('td', { class: 'num' }, progress(r.step || 0, r.total_steps), ` ${r.step ?? '–'}`);
        const v = value(r, c);
        return h('td', { class: typeof v === 'number' ? 'num' : null }, fmtVal(v));
      })));
    tableBox.innerHTML = '';
    tableBox.append(h('div', { class: 'table-tools' }, `${rows.length} runs `,
      h('button', { onclick: () => downloadCsv(`${name}-runs.csv`, cols, rows.map(r => cols.map(c => value(r, c)))) }, 'download CSV')),
      h('div', { class: 'scroll' }, h('table', { class: 'grid runs' }, h('thead', {}, h('tr', {}, h('th', {}, ''), cols.map(th))), h('tbody', {}, body))));
  }

  async function renderGroups() {
    const metric = get('metric', defaultMetric());
    const p = filterQuery();
    p.set('metric', metric); p.set('mode', get('mode', 'best'));
    let b;
    try { b = await api(`/api/sweeps/${encodeURIComponent(name)}/best?${p}`); } catch (e) {
      tableBox.innerHTML = ''; tableBox.append(h('p', { class: 'error' }, e.message)); return;
    }
    const cols = [...b.by, 'n', 'mean', 'std', 'ci_low', 'ci_high', 'min', 'max', 'diff_vs_best', 'p_adjusted', 'tied_with_best'];
    const cell = (g, c) => b.by.includes(c) ? g.params[c] : g[c];
    const sel = selected();
    const body = b.groups.map(g => {
      const ids = g.runs.map(r => r.run_id);
      const on = ids.length && ids.every(i => sel.has(i));
      return h('tr', { class: on ? 'selected' : null },
        h('td', {}, h('input', { type: 'checkbox', checked: on, title: 'overlay these runs', onchange: () => { const s = selected(); ids.forEach(i => on ? s.delete(i) : s.add(i)); update({ sel: [...s].join(',') }, 'charts'); } })),
        cols.map(c => h('td', { class: typeof cell(g, c) === 'number' ? 'num' : null }, fmtVal(cell(g, c)))));
    });
    tableBox.innerHTML = '';
    tableBox.append(h('div', { class: 'table-tools' }, `${b.groups.length} settings, ${b.mode} ${b.metric} over seeds (as simsweep best) `,
      h('button', { onclick: () => downloadCsv(`${name}-${metric}-groups.csv`, cols, b.groups.map(g => cols.map(c => cell(g, c)))) }, 'download CSV')),
      h('div', { class: 'scroll' }, h('table', { class: 'grid groups' }, h('thead', {}, h('tr', {}, h('th', {}, ''), cols.map(c => h('th', {}, c)))), h('tbody', {}, body))));
  }

  function chartCard(c) {
    const host = h('div', { class: 'chart-host' });
    const msg = h('div', { class: 'chart-msg muted' }, 'loading…');
    const card = h('section', { class: 'card', id: `chart-${c.kind}`, 'data-kind': c.kind },
      h('header', {}, h('h2', {}, c.title),
        h('span', { class: 'tools' },
          h('button', { onclick: () => charts[c.kind].svg && SimChart.downloadSvg(charts[c.kind].svg, `${name}-${c.kind}`) }, 'SVG'),
          h('button', { onclick: () => charts[c.kind].svg && SimChart.downloadPng(charts[c.kind].svg, `${name}-${c.kind}`) }, 'PNG'),
          h('button', { onclick: () => { const u = new URL(location.href); const hq = new URLSearchParams(u.hash.split('?')[1] || ''); hq.set('chart', c.kind); u.hash = u.hash.split('?')[0] + '?' + hq; navigator.clipboard && navigator.clipboard.writeText(u.href); } }, 'link'))),
      msg, host);
    chartBox.append(card);
    charts[c.kind] = { card, host, msg, data: null, svg: null };
  }

  function figureQuery(c) {
    const p = filterQuery();
    if (c.metric) p.set('metric', get('metric', defaultMetric()));
    for (const k of ['color', 'facet']) if (q.get(k)) p.set(k, q.get(k));
    if (c.zoom && q.get('smooth')) p.set('smooth', q.get('smooth'));
    if (c.kind === 'final' && q.get('x')) p.set('x', q.get('x'));
    if (c.kind === 'final' || c.kind === 'parallel') p.set('mode', get('mode', 'best'));
    if (c.zoom) { if (q.get('from')) p.set('from', q.get('from')); if (q.get('to')) p.set('to', q.get('to')); }
    return p;
  }

  async function loadChart(c) {
    const ch = charts[c.kind];
    try {
      ch.data = await api(`/api/sweeps/${encodeURIComponent(name)}/figures/${c.kind}?${figureQuery(c)}`);
      ch.error = null;
    } catch (e) {
      ch.data = null;
      ch.error = e.message;
    }
    await drawChart(c);
  }

  // Selected runs' own curves over the seed means (learning curves only).
  async function overlays(c, fig) {
    if (c.kind !== 'curves') return [];
    const metric = get('metric', defaultMetric());
    const facet = q.get('facet');
    const out = [];
    for (const id of selected()) {
      const r = runs.runs.find(x => x.run_id === id);
      if (!r) continue;
      const key = `${id}|${metric}|${q.get('from')}|${q.get('to')}|${r.step}`;
      let pts = overlayCache.get(key);
      if (!pts) {
        const p = new URLSearchParams({ max_points: '1500' });
        if (q.get('from')) p.set('from', q.get('from'));
        if (q.get('to')) p.set('to', q.get('to'));
        try {
          const m = await api(`/api/runs/${id}/metrics/${encodeURIComponent(metric)}?${p}`);
          pts = m.steps.map((s, i) => [s, m.values[i]]);
        } catch (_) { pts = []; }
        overlayCache.set(key, pts);
      }
      const series = fig.panels.flatMap(p => p.series).find(s => (s.runs || []).includes(id));
      out.push({ run_id: id, label: `run ${id} (seed ${r.seed})`, color: series ? series.color : '#111', panel: facet ? `${facet}=${r.display[facet]}` : null, points: pts });
    }
    return out;
  }

  async function drawChart(c) {
    const ch = charts[c.kind];
    // Not while a zoom is being dragged on it (the drawing would change under the pointer).
    if (ch.host._dragging) return;
    const n = ch.draws = (ch.draws || 0) + 1;
    if (!ch.data) {
      ch.host.innerHTML = '';
      ch.svg = null;
      ch.msg.textContent = ch.error || '';
      ch.card.classList.toggle('empty', true);
      return;
    }
    ch.card.classList.toggle('empty', false);
    const fig = ch.data.figure;
    ch.msg.textContent = '';
    const ov = await overlays(c, fig);
    if (n !== ch.draws) return; // a later drawing started while the overlays were read
    const r = SimChart.render(ch.host, fig, {
      dashes: ch.data.dashes,
      selected: selected(),
      hidden: hidden(c.kind),
      overlays: ov,
      onLegend: hset => { update({ [`hide.${c.kind}`]: [...hset].join('|') }, false); drawChart(c); },
      onZoom: c.zoom ? (lo, hi) => update({ from: lo === null ? null : String(lo), to: hi === undefined || lo === null ? null : String(hi) }) : null,
      onPick: ids => { const s = selected(); const all = ids.every(i => s.has(i)); ids.forEach(i => all ? s.delete(i) : s.add(i)); update({ sel: [...s].join(',') }, false); renderControls(); renderTable(); redrawCharts(); },
    });
    ch.svg = r.svg;
    ch.svg.setAttribute('data-points', fig.panels.reduce((n, p) => n + p.series.reduce((m, s) => m + s.points.length, 0), 0));
  }

  function redrawCharts() { for (const c of CHARTS) if (charts[c.kind]) drawChart(c); }
  function loadCharts() { return Promise.all(CHARTS.map(loadChart)); }

  async function renderDecisions() {
    decisionsBox.innerHTML = '';
    if (!sweep.search.decisions) return;
    const d = await api(`/api/sweeps/${encodeURIComponent(name)}/decisions`);
    const cols = ['at', 'run_id', 'method', 'metric', 'rung', 'step', 'value', 'threshold', 'compared', 'seeds', 'verdict', 'message'];
    decisionsBox.append(h('details', { class: 'card' }, h('summary', {}, `Early stopping: ${d.decisions.length} decisions, ${sweep.search.pruned} prunes`),
      h('div', { class: 'scroll' }, h('table', { class: 'grid' }, h('thead', {}, h('tr', {}, cols.map(c => h('th', {}, c)))),
        h('tbody', {}, d.decisions.map(x => h('tr', { class: x.verdict === 'prune' ? 'pruned' : null }, cols.map(c => h('td', {}, c === 'run_id' ? h('a', { href: link(['run', x.run_id]) }, x.run_id) : fmtVal(x[c]))))))))));
  }

  let first = true;
  const poll = poller(async alive => {
    const asked = ++runsAsked;
    const r = await api(`/api/sweeps/${encodeURIComponent(name)}/runs?${filterQuery()}`);
    if (!alive() || (r.version === version && !first)) return;
    const s = await api(`/api/sweeps/${encodeURIComponent(name)}`);
    if (!alive()) return;
    sweep = s;
    if (asked === runsAsked) runs = r;
    renderHead();
    renderFailures();
    if (first) for (const c of CHARTS) chartCard(c);
    // The metric menu and the filters follow what the sweep has recorded and holds.
    const sig = JSON.stringify([sweep.metrics.map(m => [m.name, m.layers]), sweep.filters]);
    if (sig !== shown.metrics) { shown.metrics = sig; renderControls(); }
    await renderTable();
    await loadCharts();
    if (!alive()) return;
    if (sweep.search.decisions !== shown.search) {
      shown.search = sweep.search.decisions;
      renderDecisions().catch(() => {});
    }
    if (first) {
      first = false;
      const target = q.get('chart');
      if (target && charts[target]) charts[target].card.scrollIntoView();
    }
    // Only once everything is drawn: a tick that failed half-way is retried at the next one.
    version = r.version;
    document.body.setAttribute('data-version', version);
  }, status);
  const onResize = () => redrawCharts();
  window.addEventListener('resize', onResize);
  return { stop() { poll.stop(); window.removeEventListener('resize', onResize); } };
}

// ------------------------------------------------------------------------------------------
// A run

function runPage(id, q) {
  document.title = `simsweep — run ${id}`;
  const status = h('div', { class: 'status-line' });
  const head = h('div', {});
  const tables = h('div', { class: 'run-tables' });
  const curves = h('div', { class: 'run-curves' });
  app.append(head, status, tables, curves);
  let seen = null;
  const hostOf = new Map();
  const poll = poller(async alive => {
    const r = await api(`/api/runs/${id}`);
    const sig = JSON.stringify([r.status, r.step, r.metrics.map(m => m.n), r.events.length, q.get('layer')]);
    if (!alive() || sig === seen) return;
    document.title = `simsweep — run ${id} (${r.status})`;
    head.innerHTML = '';
    head.append(...[h('p', {}, h('a', { href: link(['sweep', r.sweep]) }, `← sweep ${r.sweep}`)),
      h('h1', {}, `run ${r.run_id} `, badge(r.status)),
      h('p', {}, progress(r.step || 0, r.total_steps), ` step ${r.step ?? '–'}${r.total_steps ? ' of ' + r.total_steps : ''} · seed ${r.seed} · `,
        Object.entries(r.swept).map(([k, v]) => `${k}=${fmtVal(v)}`).join(', ')),
      r.error ? h('p', { class: 'error' }, `${r.status}: ${r.error}`) : null].filter(Boolean));
    const kv = (title, obj) => h('section', { class: 'card' }, h('h2', {}, title), h('table', { class: 'grid kv' }, h('tbody', {},
      Object.entries(obj).map(([k, v]) => h('tr', { class: r.swept[k] !== undefined ? 'swept' : null }, h('th', {}, k), h('td', { class: 'mono' }, fmtVal(v)))))));
    const table = (title, cols, rows, cls) => h('section', { class: `card ${cls || ''}` }, h('h2', {}, title), rows.length ? h('div', { class: 'scroll' }, h('table', { class: 'grid' },
      h('thead', {}, h('tr', {}, cols.map(c => h('th', {}, c)))), h('tbody', {}, rows.map(x => h('tr', { class: x.kind === 'failed' || x.kind === 'diverged' ? 'failed' : null }, cols.map(c => h('td', {}, fmtVal(x[c])))))))) : h('p', { class: 'muted' }, 'none'));
    const evals = r.metrics.filter(m => m.family === 'evaluation' && m.layer === -1).map(m => ({ metric: m.metric, step: m.last_step, value: m.last, best: m.max, best_step: m.max_step }));
    tables.innerHTML = '';
    tables.append(
      table('Evaluation scores', ['metric', 'step', 'value', 'best', 'best_step'], evals, 'evals'),
      table('Events', ['at', 'kind', 'message'], r.events, 'events'),
      table('Checkpoints', ['kind', 'step', 'path', 'metric', 'value'], r.checkpoints, 'checkpoints'),
      kv('Configuration', r.config),
      kv('Where it ran', { host: r.host, device: r.device, worker: r.worker, code_version: r.code_version, attempts: r.attempts, created_at: r.created_at, started_at: r.started_at, finished_at: r.finished_at, heartbeat_at: r.heartbeat_at, ...(r.fingerprint || {}) }),
      table('Metrics recorded', ['metric', 'layer', 'family', 'n', 'first_step', 'last_step', 'last', 'min', 'max'], r.metrics, 'metrics'));
    // Every metric's curve at the chosen layer.
    const layers = [...new Set(r.metrics.map(m => m.layer))].sort((a, b) => a - b);
    const layer = +(q.get('layer') || -1);
    curves.innerHTML = '';
    curves.append(...[h('h2', {}, 'Curves '), layers.length > 1 ? h('label', {}, 'layer ', h('select', { onchange: e => { q.set('layer', e.target.value); setQuery(q); seen = null; } },
      layers.map(l => h('option', { value: l, selected: l === layer }, l === -1 ? 'own (−1)' : l)))) : null].filter(Boolean));
    const grid = h('div', { class: 'mini-grid' });
    curves.append(grid);
    const ms = r.metrics.filter(m => m.layer === layer && m.n > 0);
    await Promise.all(ms.map(async m => {
      const host = h('div', { class: 'mini', 'data-metric': m.metric });
      grid.append(host);
      hostOf.set(m.metric, host);
      const d = await api(`/api/runs/${id}/metrics/${encodeURIComponent(m.metric)}?layer=${layer}&max_points=800`);
      const pts = d.steps.map((s, i) => [s, d.values[i]]);
      const fig = {
        title: m.metric, cols: 1, legend: [], note: null,
        panels: [{ title: null, x: Object.assign(SimChart.fitAxis(pts.map(p => p[0]), false, 0), { integer: true }), y: SimChart.fitAxis(pts.map(p => p[1]), false, 0.05), x_label: 'step', y_label: m.metric, labels: [],
          series: [{ name: m.metric, color: '#0072b2', dash: 0, points: pts, band: [], error_bars: [], markers: pts.length <= 40 ? 'all' : 'none', trajectory: false, bars: [], runs: [id], legend: [] }] }],
      };
      SimChart.render(host, fig, { height: 200 });
    }));
    if (alive()) seen = sig; // only once drawn: a failed tick is retried
  }, status);
  return poll;
}

route();
