// simsweep dashboard: draws a figure of the charts' model (simsweep_report::figure, as the API's
// figures/{kind} answers it) as SVG, with hover, zoom on the x (step) axis, legend entries that
// hide what they stand for, highlighted and overlaid runs, and SVG/PNG export. No dependencies.
'use strict';

const SimChart = (() => {
  const NS = 'http://www.w3.org/2000/svg';
  const PANEL_H = 250;
  const LEGEND_W = 190;
  const M = { l: 58, r: 12, t: 26, b: 40 };

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  function text(parent, x, y, s, attrs) {
    const t = el('text', Object.assign({ x, y, 'font-size': 11, fill: '#222', 'font-family': 'sans-serif' }, attrs || {}), parent);
    t.textContent = s;
    return t;
  }

  // Tick values of an axis: "nice" steps for linear, decades (and 2, 5) for log, integers for
  // integer axes, every category for categorical ones.
  function ticks(ax) {
    if (ax.categories) return ax.categories.map((_, i) => i);
    const n = Math.max(2, ax.n_labels || 6);
    if (ax.log) {
      const lo = Math.log10(ax.lo), hi = Math.log10(ax.hi);
      const out = [];
      for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) {
        for (const m of (hi - lo < 2 ? [1, 2, 5] : [1])) {
          const v = m * Math.pow(10, e);
          if (v >= ax.lo * 0.999 && v <= ax.hi * 1.001) out.push(v);
        }
      }
      return out.length >= 2 ? out : [ax.lo, ax.hi];
    }
    const span = ax.hi - ax.lo;
    if (!(span > 0)) return [ax.lo];
    let step = Math.pow(10, Math.floor(Math.log10(span / n)));
    for (const m of [1, 2, 2.5, 5, 10]) {
      if (span / (step * m) <= n) { step *= m; break; }
    }
    if (ax.integer) step = Math.max(1, Math.round(step));
    const out = [];
    for (let v = Math.ceil(ax.lo / step) * step; v <= ax.hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    return out;
  }

  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return '–';
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
    if (Number.isInteger(v)) return String(v);
    return String(+v.toPrecision(4));
  }

  function scale(ax, a, b) {
    if (ax.log) {
      const lo = Math.log10(ax.lo), hi = Math.log10(ax.hi);
      return v => a + (Math.log10(v) - lo) / (hi - lo || 1) * (b - a);
    }
    return v => a + (v - ax.lo) / ((ax.hi - ax.lo) || 1) * (b - a);
  }

  function invert(ax, a, b) {
    if (ax.log) {
      const lo = Math.log10(ax.lo), hi = Math.log10(ax.hi);
      return p => Math.pow(10, lo + (p - a) / (b - a) * (hi - lo));
    }
    return p => ax.lo + (p - a) / (b - a) * (ax.hi - ax.lo);
  }

  // An axis fitted to values (the server's Axis::fit, for charts the page builds itself).
  function fitAxis(values, log, pad) {
    pad = pad === undefined ? 0.05 : pad;
    let lo = Infinity, hi = -Infinity;
    for (const v of values) if (Number.isFinite(v) && (!log || v > 0)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    if (!Number.isFinite(lo)) return { lo: 0, hi: 1, log: false, integer: false, categories: null, n_labels: 6 };
    if (log) {
      let a = Math.log10(lo), b = Math.log10(hi);
      if (b - a < 1e-9) { a -= 0.5; b += 0.5; } else { const p = (b - a) * pad; a -= p; b += p; }
      return { lo: Math.pow(10, a), hi: Math.pow(10, b), log: true, integer: false, categories: null, n_labels: 6 };
    }
    if (hi - lo <= 1e-12 * Math.max(Math.abs(lo), Math.abs(hi), 1e-300)) { const d = Math.max(Math.abs(lo) * 0.05, 1e-6); lo -= d; hi += d; } else { const p = (hi - lo) * pad; lo -= p; hi += p; }
    return { lo, hi, log: false, integer: false, categories: null, n_labels: 6 };
  }

  function dashArray(dashes, i) {
    const d = dashes && dashes[(i || 0) % dashes.length];
    return d && d[0] > 0 ? `${d[0]},${d[1]}` : null;
  }

  // Draw `fig` into `host` (replacing what is there). opts: dashes, selected (Set of run ids),
  // overlays ([{run_id, label, color, panel, points}]), hidden (Set of legend labels), zoom
  // ([lo, hi] or null), onZoom(lo, hi | null) (x zoom; null: none), onLegend(hidden),
  // onPick(run_ids), height (per panel).
  function render(host, fig, opts) {
    opts = opts || {};
    const selected = opts.selected || new Set();
    const hidden = opts.hidden || new Set();
    const overlays = opts.overlays || [];
    host.innerHTML = '';
    host.classList.add('simchart');
    const W = Math.max(520, host.clientWidth || 900);
    const cols = Math.max(1, fig.cols || 1);
    const rows = Math.max(1, Math.ceil(fig.panels.length / cols));
    const ph = opts.height || PANEL_H;
    const legendW = fig.legend && fig.legend.length ? LEGEND_W : 0;
    const pw = Math.floor((W - legendW) / cols);
    const H = 30 + rows * ph;
    const svg = el('svg', { xmlns: NS, width: W, height: H, viewBox: `0 0 ${W} ${H}`, 'font-family': 'sans-serif', role: 'img' }, host);
    el('rect', { x: 0, y: 0, width: W, height: H, fill: '#fff' }, svg);
    text(svg, 8, 18, fig.title || '', { 'font-size': 13, 'font-weight': 'bold' });
    const anySel = selected.size > 0;
    const bandHidden = [...hidden].some(h => h.startsWith('min–max'));
    const isHidden = s => (s.legend || []).some(l => hidden.has(l));
    const isSel = s => (s.runs || []).some(r => selected.has(r));
    const panels = [];
    fig.panels.forEach((p, i) => {
      const ox = (i % cols) * pw, oy = 30 + Math.floor(i / cols) * ph;
      const a = ox + M.l, b = ox + pw - M.r, top = oy + M.t, bot = oy + ph - M.b;
      const X = scale(p.x, a, b), Y = scale(p.y, bot, top);
      const g = el('g', { class: 'panel', 'data-panel': i }, svg);
      const clipId = `clip${Math.random().toString(36).slice(2)}`;
      const cp = el('clipPath', { id: clipId }, g);
      el('rect', { x: a, y: top, width: b - a, height: bot - top }, cp);
      el('rect', { class: 'frame', x: a, y: top, width: b - a, height: bot - top, fill: '#fff', stroke: '#999', 'stroke-width': 1 }, g);
      if (p.title) text(g, (a + b) / 2, oy + 16, p.title, { 'text-anchor': 'middle', 'font-size': 11.5 });
      for (const t of ticks(p.x)) {
        const x = X(t);
        if (x < a - 0.5 || x > b + 0.5) continue;
        el('line', { x1: x, x2: x, y1: top, y2: bot, stroke: '#eee' }, g);
        const label = p.x.categories ? p.x.categories[t] : fmt(t);
        text(g, x, bot + 13, label, { 'text-anchor': 'middle', 'font-size': 10 });
      }
      for (const t of ticks(p.y)) {
        const y = Y(t);
        if (y < top - 0.5 || y > bot + 0.5) continue;
        el('line', { x1: a, x2: b, y1: y, y2: y, stroke: '#eee' }, g);
        text(g, a - 4, y + 3, p.y.categories ? p.y.categories[t] : fmt(t), { 'text-anchor': 'end', 'font-size': 10 });
      }
      if (p.x_label) text(g, (a + b) / 2, bot + 28, p.x_label, { 'text-anchor': 'middle', 'font-size': 11 });
      if (p.y_label) text(g, ox + 12, (top + bot) / 2, p.y_label, { 'text-anchor': 'middle', 'font-size': 11, transform: `rotate(-90 ${ox + 12} ${(top + bot) / 2})` });
      const data = el('g', { 'clip-path': `url(#${clipId})` }, g);
      const drawn = [];
      const ok = v => v !== null && Number.isFinite(v) && (!p.y.log || v > 0);
      const okx = v => v !== null && Number.isFinite(v) && (!p.x.log || v > 0);
      for (const s of p.series) {
        if (isHidden(s)) continue;
        const sel = isSel(s);
        const op = anySel && !sel && s.runs && s.runs.length ? 0.22 : 1;
        const sg = el('g', { class: 'series', 'data-name': s.name, opacity: op }, data);
        if (s.band && s.band.length && !bandHidden) {
          const up = s.band.filter(q => okx(q[0]) && ok(q[1]) && ok(q[2]));
          const d = up.map((q, j) => `${j ? 'L' : 'M'}${X(q[0]).toFixed(1)},${Y(q[2]).toFixed(1)}`).join('') +
            up.slice().reverse().map(q => `L${X(q[0]).toFixed(1)},${Y(q[1]).toFixed(1)}`).join('') + 'Z';
          if (up.length > 1) el('path', { d, fill: s.color, 'fill-opacity': 0.16, stroke: 'none' }, sg);
        }
        for (const q of s.bars || []) {
          const y0 = Y(p.y.log ? p.y.lo : Math.max(p.y.lo, 0)), y1 = Y(q[1]);
          const w = (X(q[0] + 0.3) - X(q[0] - 0.3));
          el('rect', { x: X(q[0] - 0.3), y: Math.min(y0, y1), width: Math.abs(w), height: Math.abs(y1 - y0), fill: s.color }, sg);
        }
        for (const q of s.error_bars || []) {
          if (!okx(q[0]) || !ok(q[1]) || !ok(q[2])) continue;
          const x = X(q[0]);
          el('path', { d: `M${x - 4},${Y(q[1])}H${x + 4}M${x},${Y(q[1])}V${Y(q[2])}M${x - 4},${Y(q[2])}H${x + 4}`, stroke: s.color, 'stroke-width': 1.2, fill: 'none' }, sg);
        }
        const pts = (s.points || []).filter(q => okx(q[0]) && ok(q[1]));
        if (pts.length > 1 && !(s.bars && s.bars.length)) {
          let d = '';
          let pen = false;
          for (const q of s.points) {
            if (!okx(q[0]) || !ok(q[1])) { pen = false; continue; }
            d += `${pen ? 'L' : 'M'}${X(q[0]).toFixed(1)},${Y(q[1]).toFixed(1)}`;
            pen = true;
          }
          el('path', { d, fill: 'none', stroke: s.color, 'stroke-width': sel ? 3 : 1.6, 'stroke-dasharray': dashArray(opts.dashes, s.dash), 'stroke-linejoin': 'round' }, sg);
        }
        if (s.markers === 'all' || pts.length === 1) {
          for (const q of pts) el('circle', { cx: X(q[0]).toFixed(1), cy: Y(q[1]).toFixed(1), r: sel ? 3.5 : 2.5, fill: s.color }, sg);
        }
        if (s.trajectory && pts.length) {
          const f = pts[0], l = pts[pts.length - 1];
          el('circle', { cx: X(f[0]), cy: Y(f[1]), r: 5, fill: '#fff', stroke: s.color, 'stroke-width': 1.5 }, sg);
          if (pts.length > 1) {
            const pr = pts[pts.length - 2];
            const ang = Math.atan2(Y(l[1]) - Y(pr[1]), X(l[0]) - X(pr[0]));
            const x = X(l[0]), y = Y(l[1]), k = 8;
            el('path', { d: `M${x},${y}L${x - k * Math.cos(ang - 0.45)},${y - k * Math.sin(ang - 0.45)}L${x - k * Math.cos(ang + 0.45)},${y - k * Math.sin(ang + 0.45)}Z`, fill: s.color }, sg);
          }
        }
        drawn.push({ s, pts, label: s.name, runs: s.runs || [] });
      }
      for (const o of overlays) {
        if (o.panel !== undefined && o.panel !== null && o.panel !== p.title && !(o.panel === '' && !p.title)) continue;
        const pts = o.points.filter(q => okx(q[0]) && ok(q[1]));
        if (!pts.length) continue;
        const d = pts.map((q, j) => `${j ? 'L' : 'M'}${X(q[0]).toFixed(1)},${Y(q[1]).toFixed(1)}`).join('');
        el('path', { class: 'overlay', 'data-run': o.run_id, d, fill: 'none', stroke: o.color || '#111', 'stroke-width': 1.3, 'stroke-opacity': 0.95 }, data);
        drawn.push({ s: { color: o.color || '#111' }, pts, label: o.label, runs: [o.run_id], overlay: true });
      }
      for (const lb of p.labels || []) {
        if (!okx(lb.x) || !Number.isFinite(lb.y)) continue;
        text(g, X(lb.x), Y(lb.y) + 3, lb.text, { 'text-anchor': lb.left ? 'start' : 'middle', 'font-size': 9.5, fill: '#444' });
      }
      panels.push({ p, g, a, b, top, bot, X, Y, drawn, ix: invert(p.x, a, b) });
    });
    // The legend, right of the panels.
    if (legendW) {
      const lg = el('g', { class: 'legend' }, svg);
      let y = 44;
      const lx = W - legendW + 8;
      for (const e of fig.legend) {
        const off = hidden.has(e.label);
        const item = el('g', { class: 'legend-entry', 'data-label': e.label, cursor: e.type === 'heading' ? 'default' : 'pointer', opacity: off ? 0.35 : 1 }, lg);
        el('rect', { x: lx - 4, y: y - 11, width: legendW - 8, height: 16, fill: '#fff', 'fill-opacity': 0 }, item);
        if (e.type === 'line') {
          el('line', { x1: lx, x2: lx + 24, y1: y - 4, y2: y - 4, stroke: e.color, 'stroke-width': 2, 'stroke-dasharray': dashArray(opts.dashes, e.dash) }, item);
          if (e.marker) el('circle', { cx: lx + 12, cy: y - 4, r: 2.5, fill: e.color }, item);
        } else if (e.type === 'band') {
          el('rect', { x: lx, y: y - 9, width: 24, height: 10, fill: '#606060', 'fill-opacity': 0.2 }, item);
        } else if (e.type === 'start') {
          el('circle', { cx: lx + 12, cy: y - 4, r: 4.5, fill: '#fff', stroke: '#606060' }, item);
        } else if (e.type === 'end') {
          el('path', { d: `M${lx + 16},${y - 4}L${lx + 8},${y - 8}L${lx + 8},${y}Z`, fill: '#606060' }, item);
        }
        const label = e.label.length > 26 ? e.label.slice(0, 25) + '…' : e.label;
        const t = text(item, e.type === 'heading' ? lx : lx + 30, y, label, { 'font-size': 11, 'font-weight': e.type === 'heading' ? 'bold' : 'normal', 'text-decoration': off ? 'line-through' : null });
        el('title', {}, t).textContent = e.label;
        if (e.type !== 'heading' && opts.onLegend) {
          item.addEventListener('click', () => {
            const h = new Set(hidden);
            if (h.has(e.label)) h.delete(e.label); else h.add(e.label);
            opts.onLegend(h);
          });
        }
        y += 17;
      }
      if (fig.note) {
        // Wrapped to the legend's width (about 32 characters of 10 px text).
        for (const para of fig.note.split('\n')) {
          let line = '';
          for (const w of para.split(' ')) {
            if (line && (line + ' ' + w).length > 32) { text(lg, lx, y + 8, line, { 'font-size': 10, fill: '#555' }); y += 13; line = w; } else line = line ? line + ' ' + w : w;
          }
          if (line) { text(lg, lx, y + 8, line, { 'font-size': 10, fill: '#555' }); y += 13; }
        }
      }
    }
    // Hover: the nearest drawn point within 24 px.
    const tip = document.createElement('div');
    tip.className = 'tip';
    tip.style.display = 'none';
    host.appendChild(tip);
    const dot = el('circle', { r: 5, fill: 'none', stroke: '#000', 'stroke-width': 1.5, display: 'none', 'pointer-events': 'none' }, svg);
    const band = el('rect', { fill: '#4a90d9', 'fill-opacity': 0.15, stroke: '#4a90d9', display: 'none', 'pointer-events': 'none' }, svg);
    const at = ev => {
      const r = svg.getBoundingClientRect();
      const x = (ev.clientX - r.left) * (W / r.width), y = (ev.clientY - r.top) * (H / r.height);
      return { x, y, panel: panels.find(q => x >= q.a && x <= q.b && y >= q.top && y <= q.bot) };
    };
    let drag = null;
    let frame = 0;
    svg.addEventListener('mousemove', ev => {
      const pos = at(ev);
      if (drag) {
        const x0 = Math.min(drag.x, Math.max(drag.panel.a, Math.min(drag.panel.b, pos.x)));
        const x1 = Math.max(drag.x, Math.max(drag.panel.a, Math.min(drag.panel.b, pos.x)));
        band.setAttribute('x', x0); band.setAttribute('width', x1 - x0);
        band.setAttribute('y', drag.panel.top); band.setAttribute('height', drag.panel.bot - drag.panel.top);
        band.setAttribute('display', 'inline');
        return;
      }
      if (frame) return;
      frame = requestAnimationFrame(() => {
        frame = 0;
        hover(pos, ev);
      });
    });
    function hover(pos, ev) {
      const q = pos.panel;
      if (!q) { tip.style.display = 'none'; dot.setAttribute('display', 'none'); return; }
      let best = null, bd = 24 * 24;
      for (const d of q.drawn) {
        for (const pt of d.pts) {
          const dx = q.X(pt[0]) - pos.x, dy = q.Y(pt[1]) - pos.y;
          const dd = dx * dx + dy * dy;
          if (dd < bd) { bd = dd; best = { d, pt }; }
        }
      }
      if (!best) { tip.style.display = 'none'; dot.setAttribute('display', 'none'); return; }
      dot.setAttribute('cx', q.X(best.pt[0])); dot.setAttribute('cy', q.Y(best.pt[1]));
      dot.setAttribute('display', 'inline');
      const runs = best.d.runs;
      const xl = q.p.x.categories ? q.p.x.categories[Math.round(best.pt[0])] : fmt(best.pt[0]);
      const runLine = runs.length === 0 ? '' : runs.length === 1 ? `run ${runs[0]}` : `${runs.length} runs: ${runs.slice(0, 3).join(', ')}${runs.length > 3 ? ', …' : ''}`;
      tip.innerHTML = '';
      const add = (s, cls) => { const d = document.createElement('div'); d.textContent = s; if (cls) d.className = cls; tip.appendChild(d); };
      add(best.d.label || '', 'tip-name');
      if (runLine) add(runLine, 'tip-runs');
      add(`${q.p.x_label || 'x'} ${xl}`);
      add(`${q.p.y_label || 'y'} ${fmt(best.pt[1])}`);
      tip.style.display = 'block';
      const hr = host.getBoundingClientRect();
      tip.style.left = `${Math.min(ev.clientX - hr.left + 14, hr.width - 230)}px`;
      tip.style.top = `${ev.clientY - hr.top + 12}px`;
    }
    svg.addEventListener('mouseleave', () => { tip.style.display = 'none'; dot.setAttribute('display', 'none'); });
    // One window-level mouseup handler per host, replaced at each render (a live page redraws
    // every second): it ends a zoom drag begun on this drawing.
    if (host._up) window.removeEventListener('mouseup', host._up);
    host._up = null;
    host._dragging = false;
    let dragged = false; // the click that ends a drag is not a pick
    if (opts.onZoom) {
      svg.addEventListener('mousedown', ev => {
        const pos = at(ev);
        if (!pos.panel || ev.button !== 0) return;
        ev.preventDefault();
        drag = { x: pos.x, panel: pos.panel };
        dragged = false;
        host._dragging = true;
      });
      host._up = ev => {
        if (!drag) return;
        const pos = at(ev);
        const q = drag.panel;
        const x0 = Math.min(drag.x, Math.max(q.a, Math.min(q.b, pos.x))), x1 = Math.max(drag.x, Math.max(q.a, Math.min(q.b, pos.x)));
        drag = null;
        host._dragging = false;
        band.setAttribute('display', 'none');
        if (x1 - x0 >= 6) {
          dragged = true;
          opts.onZoom(Math.floor(q.ix(x0)), Math.ceil(q.ix(x1)));
        }
      };
      window.addEventListener('mouseup', host._up);
      svg.addEventListener('dblclick', () => opts.onZoom(null));
    }
    if (opts.onPick) {
      svg.addEventListener('click', ev => {
        // Not the end of a zoom drag, and not the clicks of a double click (that zooms out): a
        // pick waits for the double-click time.
        clearTimeout(host._pick);
        if (dragged || ev.detail > 1) { dragged = false; return; }
        const pos = at(ev);
        if (!pos.panel) return;
        let best = null, bd = 10 * 10;
        for (const d of pos.panel.drawn) for (const pt of d.pts) {
          const dx = pos.panel.X(pt[0]) - pos.x, dy = pos.panel.Y(pt[1]) - pos.y;
          if (dx * dx + dy * dy < bd) { bd = dx * dx + dy * dy; best = d; }
        }
        if (best && best.runs.length) host._pick = setTimeout(() => opts.onPick(best.runs), 300);
      });
    }
    return { svg, panels };
  }

  // The chart as a standalone SVG document.
  function svgText(svg) {
    const c = svg.cloneNode(true);
    c.querySelectorAll('[display="none"]').forEach(n => n.remove());
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + new XMLSerializer().serializeToString(c);
  }

  function download(name, blob) {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.appendChild(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }

  function downloadSvg(svg, name) {
    download(name + '.svg', new Blob([svgText(svg)], { type: 'image/svg+xml' }));
  }

  // PNG at twice the SVG's size, drawn by the browser from the SVG.
  function downloadPng(svg, name) {
    const w = +svg.getAttribute('width'), h = +svg.getAttribute('height');
    const img = new Image();
    const url = URL.createObjectURL(new Blob([svgText(svg)], { type: 'image/svg+xml' }));
    img.onload = () => {
      const c = document.createElement('canvas');
      c.width = w * 2; c.height = h * 2;
      const ctx = c.getContext('2d');
      ctx.scale(2, 2);
      ctx.drawImage(img, 0, 0, w, h);
      URL.revokeObjectURL(url);
      c.toBlob(b => download(name + '.png', b), 'image/png');
    };
    img.src = url;
  }

  return { render, fitAxis, fmt, svgText, downloadSvg, downloadPng, download };
})();
