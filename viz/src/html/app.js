'use strict';
// ttsan allocation map. Everything from the trace is data: it reaches the document only through
// textContent and canvas fillText, never as markup.
(function () {
  const errors = [];
  const origError = console.error;
  console.error = function (...args) {
    errors.push(args.map(String).join(' '));
    origError.apply(console, args);
  };
  window.addEventListener('error', (e) => errors.push(String(e.message || e)));
  window.addEventListener('unhandledrejection', (e) => errors.push('unhandled rejection: ' + String(e.reason)));
  const scriptsAtStart = document.getElementsByTagName('script').length;
  const params = new URLSearchParams(location.search);

  const ROLE_COLORS = ['#4e79a7', '#59a14f', '#edc948', '#b07aa1', '#f28e2b', '#76b7b2', '#9c755f', '#bab0ac'];
  const BG = '#15181d';
  const FIND = '#ff3b3b';
  const KIND_NAMES = ['interleaved', 'sharded', 'circular buffer', 'circular buffer (aliases an L1 buffer)'];
  const MARGIN = { left: 78, right: 10, top: 18, bottom: 74 };
  const TRACK_H = 16;
  const MAX_LISTED_FINDINGS = 500;
  const ALL = 'all';

  const $ = (id) => document.getElementById(id);
  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  };

  function rgba(hex) {
    const n = parseInt(hex.slice(1), 16);
    // ImageData is RGBA bytes; a little-endian Uint32 view wants ABGR.
    return (0xff << 24 | (n & 0xff) << 16 | (n & 0xff00) | (n >> 16 & 0xff)) >>> 0;
  }
  function darker(hex) {
    const n = parseInt(hex.slice(1), 16);
    const f = (v) => Math.floor(v * 0.62);
    return '#' + [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff].map((v) => f(v).toString(16).padStart(2, '0')).join('');
  }

  function fmtBytes(b) {
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return (i === 0 ? b.toFixed(0) : b.toFixed(b < 10 ? 2 : 1)) + ' ' + u[i];
  }
  const hex = (a) => '0x' + Math.round(a).toString(16);

  // ---- decoding -----------------------------------------------------------------------------
  function base64Bytes(text) {
    const bin = atob(text.trim());
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  async function gunzip(bytes) {
    if (typeof DecompressionStream === 'undefined') {
      throw new Error('this browser cannot decompress the embedded data (no DecompressionStream); use a current Chrome, Edge, Firefox or Safari');
    }
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  function parseBlock(buf) {
    const magic = String.fromCharCode(buf[0], buf[1], buf[2], buf[3]);
    if (magic !== 'TTSV') throw new Error('the embedded data is not a ttsan map block');
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const len = dv.getUint32(4, true);
    const meta = JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + len)));
    if (meta.version !== 1) throw new Error('unsupported map data version ' + meta.version);
    const start = Math.ceil((8 + len) / 8) * 8;
    const types = { f64: Float64Array, u32: Uint32Array, i32: Int32Array, u16: Uint16Array };
    const cols = {};
    for (const [name, c] of Object.entries(meta.columns)) {
      cols[name] = new types[c.type](buf.buffer, buf.byteOffset + start + c.offset, c.length);
    }
    return { meta, cols };
  }

  // ---- state --------------------------------------------------------------------------------
  let meta, A, O, N, NOPS;
  let unitSets = [];
  let rowColor, rowEdge;
  let vis = new Uint32Array(0);
  let visCount = 0;
  let nameOk = null;
  const state = { chip: 0, space: 'dram', unit: ALL, layer: -1, roles: new Set(), name: '', view: null, selected: -1, hover: -1 };
  let canvas, ctx, img = null, px32 = null, pick = null, W = 0, H = 0, dpr = 1;
  let drawQueued = false;

  const spaceIdx = (r) => (A.flags[r] >> 3) & 3;
  const roleIdx = (r) => A.flags[r] & 7;
  const kindIdx = (r) => (A.flags[r] >> 5) & 3;
  const displayName = (r) => meta.strings[A.name[r]] || ('buffer #' + A.id[r]);
  const opLabel = (o) => (o >= 0 && o < NOPS) ? '#' + O.index[o] + ' ' + meta.strings[O.name[o]] : '';
  const deviceOf = (slot) => meta.devices[slot] !== undefined ? meta.devices[slot] : slot;

  function unitKeyLabel(space, key) {
    if (space === 'dram' || space === 'trace') return 'bank ' + key;
    return 'core (' + (key >>> 16) + ',' + (key & 0xffff) + ')';
  }

  // ---- filtering ----------------------------------------------------------------------------
  function rebuild() {
    const sp = meta.spaces.indexOf(state.space);
    const chip = state.chip;
    const unit = state.unit;
    const roles = state.roles;
    const layer = state.layer;
    const out = new Uint32Array(N);
    let n = 0;
    let amin = Infinity, amax = -Infinity;
    for (let r = 0; r < N; r++) {
      const f = A.flags[r];
      if (((f >> 3) & 3) !== sp) continue;
      const c = A.chip[r];
      if (c !== 0xffff && c !== chip) continue;
      if (!roles.has(f & 7)) continue;
      if (layer >= 0 && A.layer[r] !== layer) continue;
      if (nameOk && !nameOk[A.name[r]]) continue;
      const u = A.units[r];
      if (unit !== ALL && u !== 0 && !unitSets[u].has(unit)) continue;
      out[n++] = r;
      const a = A.addr[r];
      if (a < amin) amin = a;
      if (a + A.size[r] > amax) amax = a + A.size[r];
    }
    vis = out;
    visCount = n;
    state.extent = n ? [amin, amax] : null;
  }

  function fitView() {
    let y0, y1;
    if (state.extent) {
      [y0, y1] = state.extent;
    } else {
      y0 = 0;
      y1 = 1 << 20;
    }
    const pad = Math.max((y1 - y0) * 0.03, 64);
    state.view = { x0: 0, x1: meta.t_end, y0: Math.max(0, y0 - pad), y1: y1 + pad };
  }

  // ---- drawing ------------------------------------------------------------------------------
  function resize() {
    const wrap = $('mapwrap');
    dpr = window.devicePixelRatio || 1;
    const cw = wrap.clientWidth, ch = wrap.clientHeight;
    canvas.width = Math.max(1, Math.floor(cw * dpr));
    canvas.height = Math.max(1, Math.floor(ch * dpr));
    W = Math.max(1, Math.floor((cw - MARGIN.left - MARGIN.right) * dpr));
    H = Math.max(1, Math.floor((ch - MARGIN.top - MARGIN.bottom) * dpr));
    img = ctx.createImageData(W, H);
    px32 = new Uint32Array(img.data.buffer);
    pick = new Int32Array(W * H);
  }

  function requestDraw() {
    if (drawQueued) return;
    drawQueued = true;
    requestAnimationFrame(flushDraw);
  }

  function flushDraw() {
    if (!drawQueued) return;
    drawQueued = false;
    draw();
  }

  // Level of detail: every allocation is rasterised into a pixel buffer (and a pick buffer of
  // row ids for hovering) instead of being a path or a DOM node, so the cost is one loop over
  // the visible rows plus the covered pixels; allocations narrower than a pixel collapse into it.
  function rasterise() {
    const v = state.view;
    const bg = rgba(BG);
    px32.fill(bg);
    pick.fill(-1);
    const sx = W / (v.x1 - v.x0), sy = H / (v.y1 - v.y0);
    const T0 = A.t0, T1 = A.t1, AD = A.addr, SZ = A.size;
    let lo = 0, hi = visCount;
    while (lo < hi) { const m = (lo + hi) >> 1; if (T0[vis[m]] <= v.x1) lo = m + 1; else hi = m; }
    const end = lo;
    let drawn = 0;
    for (let k = 0; k < end; k++) {
      const r = vis[k];
      const t1 = T1[r];
      if (t1 < v.x0) continue;
      const a0 = AD[r], a1 = a0 + SZ[r];
      if (a1 < v.y0 || a0 > v.y1) continue;
      let xa = Math.floor((T0[r] - v.x0) * sx), xb = Math.ceil((t1 - v.x0) * sx);
      let ya = Math.floor(H - (a1 - v.y0) * sy), yb = Math.ceil(H - (a0 - v.y0) * sy);
      if (xa < 0) xa = 0;
      if (xb > W) xb = W;
      if (ya < 0) ya = 0;
      if (yb > H) yb = H;
      if (xb <= xa) { if (xa >= W) continue; xb = xa + 1; }
      if (yb <= ya) { if (ya >= H) continue; yb = ya + 1; }
      drawn++;
      const c = rowColor[r];
      if (xb - xa === 1 && yb - ya === 1) {
        const i = ya * W + xa;
        px32[i] = c;
        pick[i] = r;
        continue;
      }
      const edged = xb - xa >= 4 && yb - ya >= 4;
      const e = rowEdge[r];
      for (let y = ya; y < yb; y++) {
        const o = y * W;
        if (edged && (y === ya || y === yb - 1)) {
          px32.fill(e, o + xa, o + xb);
        } else {
          px32.fill(c, o + xa, o + xb);
          if (edged) { px32[o + xa] = e; px32[o + xb - 1] = e; }
        }
        pick.fill(r, o + xa, o + xb);
      }
    }
    return drawn;
  }

  const tx = (t) => MARGIN.left + (t - state.view.x0) / (state.view.x1 - state.view.x0) * (W / dpr);
  const ty = (a) => MARGIN.top + (H / dpr) - (a - state.view.y0) / (state.view.y1 - state.view.y0) * (H / dpr);

  function draw() {
    if (!meta) return;
    const t = performance.now();
    const drawn = rasterise();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.putImageData(img, Math.round(MARGIN.left * dpr), Math.round(MARGIN.top * dpr));
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const pw = W / dpr, ph = H / dpr;
    ctx.save();
    ctx.beginPath();
    ctx.rect(MARGIN.left, MARGIN.top, pw, ph);
    ctx.clip();
    drawOpLines();
    drawFindings();
    drawHighlight(state.hover, '#ffffff', 1.5, []);
    ctx.restore();
    drawAxes();
    drawOps();
    $('status').textContent = visCount.toLocaleString() + ' allocations match, ' + drawn.toLocaleString() +
      ' in view · wheel: zoom time · shift+wheel: zoom address · ctrl+wheel: both · drag: pan · double-click: fit';
    state.lastDrawMs = performance.now() - t;
  }

  function rowRect(r) {
    const x0 = tx(A.t0[r]), x1 = tx(A.t1[r]);
    const y0 = ty(A.addr[r] + A.size[r]), y1 = ty(A.addr[r]);
    return [x0, y0, Math.max(x1 - x0, 2), Math.max(y1 - y0, 2)];
  }

  function drawHighlight(r, color, width, dash) {
    if (r < 0 || r >= N) return;
    if (meta.spaces[spaceIdx(r)] !== state.space) return;
    const [x, y, w, h] = rowRect(r);
    ctx.setLineDash(dash);
    ctx.lineWidth = width;
    ctx.strokeStyle = color;
    ctx.strokeRect(x - 1, y - 1, w + 2, h + 2);
    ctx.setLineDash([]);
  }

  function findingOnView(f) {
    if (f.space !== state.space) return false;
    if (f.chip === null || f.chip === undefined) return true;
    return f.chip === state.chip || (f.chips || []).includes(state.chip);
  }

  function drawFindings() {
    meta.findings.forEach((f, i) => {
      if (!findingOnView(f)) return;
      const sel = i === state.selected;
      drawHighlight(f.victim, '#00e5ff', sel ? 3 : 2, []);
      drawHighlight(f.related, '#ff4fd8', sel ? 3 : 2, [5, 3]);
      let t0 = 0, t1 = meta.t_end;
      if (f.op >= 0) { t0 = O.t0[f.op]; t1 = O.t1[f.op]; }
      const x0 = tx(t0), x1 = Math.max(tx(t1), x0 + 3);
      const y0 = ty(f.address + Math.max(f.size, 1)), y1 = ty(f.address);
      const h = Math.max(y1 - y0, 3);
      ctx.fillStyle = 'rgba(255,59,59,0.7)';
      ctx.fillRect(x0, y0, x1 - x0, h);
      ctx.lineWidth = sel ? 3 : 2;
      ctx.strokeStyle = FIND;
      ctx.strokeRect(x0 - 2, y0 - 2, x1 - x0 + 4, h + 4);
      if (sel) {
        ctx.fillStyle = '#ffffff';
        ctx.font = '12px system-ui, sans-serif';
        ctx.fillText(f.kind + ' · ' + f.culprit, Math.min(x1 + 6, MARGIN.left + W / dpr - 200), Math.max(y0 - 6, MARGIN.top + 12));
      }
    });
  }

  function opRange() {
    const v = state.view;
    let lo = 0, hi = NOPS;
    while (lo < hi) { const m = (lo + hi) >> 1; if (O.t0[m] <= v.x1) lo = m + 1; else hi = m; }
    return lo;
  }

  function drawOpLines() {
    const v = state.view;
    const end = opRange();
    const pxPerT = (W / dpr) / (v.x1 - v.x0);
    ctx.strokeStyle = 'rgba(255,255,255,0.13)';
    ctx.lineWidth = 1;
    ctx.beginPath();
    let lastX = -1e9;
    for (let o = 0; o < end; o++) {
      if (O.parent[o] !== -1 || O.t1[o] < v.x0) continue;
      if ((O.t1[o] - O.t0[o]) * pxPerT < 24) continue;
      const x = Math.round(tx(O.t0[o])) + 0.5;
      if (x - lastX < 4) continue;
      lastX = x;
      ctx.moveTo(x, MARGIN.top);
      ctx.lineTo(x, MARGIN.top + H / dpr);
    }
    ctx.stroke();
  }

  function drawOps() {
    const v = state.view;
    const top = MARGIN.top + H / dpr + 4;
    const end = opRange();
    const lastCol = [-1e9, -1e9];
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    ctx.save();
    ctx.beginPath();
    ctx.rect(MARGIN.left, top, W / dpr, TRACK_H * 2 + 2);
    ctx.clip();
    for (let o = 0; o < end; o++) {
      if (O.t1[o] < v.x0) continue;
      const depth = O.parent[o] === -1 ? 0 : 1;
      const x0 = tx(O.t0[o]), x1 = tx(O.t1[o]);
      const w = x1 - x0;
      if (w < 1 && Math.floor(x0) === lastCol[depth]) continue;
      lastCol[depth] = Math.floor(x0);
      const y = top + depth * (TRACK_H + 2);
      const sel = state.selected >= 0 && meta.findings[state.selected].op === o;
      ctx.fillStyle = sel ? FIND : (o & 1 ? '#8792a2' : '#aab3c0');
      ctx.fillRect(x0, y, Math.max(w, 1), TRACK_H);
      if (w > 24) {
        // The longest form of the name that fits: full, last dotted component, index only.
        const name = meta.strings[O.name[o]];
        const room = Math.min(x1, MARGIN.left + W / dpr) - Math.max(x0, MARGIN.left) - 6;
        const label = ['#' + O.index[o] + ' ' + name, '#' + O.index[o] + ' ' + name.split('.').pop(), '#' + O.index[o]]
          .find((l) => ctx.measureText(l).width <= room);
        if (label) {
          ctx.fillStyle = '#10141a';
          ctx.fillText(label, Math.max(x0, MARGIN.left) + 3, y + TRACK_H / 2);
        }
      }
    }
    ctx.restore();
  }

  function niceStep(span, target) {
    const raw = span / target;
    const p = Math.pow(2, Math.floor(Math.log2(raw)));
    return raw / p > 1.5 ? p * 2 : p;
  }

  function drawAxes() {
    const v = state.view;
    const pw = W / dpr, ph = H / dpr;
    ctx.fillStyle = '#1d2430';
    ctx.strokeStyle = '#c5cad3';
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    const ystep = niceStep(v.y1 - v.y0, Math.max(2, ph / 45));
    for (let a = Math.ceil(v.y0 / ystep) * ystep; a <= v.y1; a += ystep) {
      const y = ty(a);
      ctx.fillText(hex(a), MARGIN.left - 4, y);
      ctx.beginPath();
      ctx.moveTo(MARGIN.left - 3, y);
      ctx.lineTo(MARGIN.left, y);
      ctx.stroke();
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    const axisY = MARGIN.top + ph + 4 + TRACK_H * 2 + 6;
    const xstep = Math.max(1, Math.round(niceStep(v.x1 - v.x0, Math.max(2, pw / 110))));
    for (let t = Math.ceil(v.x0 / xstep) * xstep; t <= v.x1; t += xstep) {
      const x = tx(t);
      const o = opAt(t);
      ctx.fillText(o >= 0 ? 'op #' + O.index[o] : 't ' + t, x, axisY);
    }
    ctx.textAlign = 'left';
    ctx.fillStyle = '#5a6473';
    ctx.textBaseline = 'top';
    ctx.fillText('address (' + (state.unit === ALL ? (state.space === 'dram' || state.space === 'trace' ? 'every bank, folded' : 'lock-step, every core') : unitKeyLabel(state.space, state.unit)) + ')', 4, 3);
  }

  // The innermost op running at time t, or -1.
  function opAt(t) {
    let lo = 0, hi = NOPS;
    while (lo < hi) { const m = (lo + hi) >> 1; if (O.t0[m] <= t) lo = m + 1; else hi = m; }
    for (let o = lo - 1, seen = 0; o >= 0 && seen < 64; o--, seen++) {
      if (O.t0[o] <= t && O.t1[o] >= t) return o;
    }
    return -1;
  }

  // ---- details ------------------------------------------------------------------------------
  function detailsOf(r) {
    const dl = el('dl');
    const add = (k, v) => { dl.appendChild(el('dt', k)); dl.appendChild(el('dd', v)); };
    const sp = meta.spaces[spaceIdx(r)];
    add('name', displayName(r));
    add('id', A.id[r]);
    add('role', meta.roles[roleIdx(r)]);
    add('chip', A.chip[r] === 0xffff ? 'every chip (mesh buffer)' : 'device ' + deviceOf(A.chip[r]));
    add('space', sp);
    add('layout', KIND_NAMES[kindIdx(r)]);
    const u = A.units[r];
    const per = (sp === 'dram' || sp === 'trace') ? 'bank' : 'core';
    add('address', hex(A.addr[r]) + ' – ' + hex(A.addr[r] + A.size[r]) + ' on ' +
      (u === 0 ? 'every ' + per : unitSets[u].size + ' ' + per + (unitSets[u].size === 1 ? '' : 's')));
    if (u !== 0) add(per + 's', [...unitSets[u]].slice(0, 16).map((k) => unitKeyLabel(sp, k)).join(', ') + (unitSets[u].size > 16 ? ', …' : ''));
    add('size', fmtBytes(A.total[r]) + ' (' + fmtBytes(A.size[r]) + ' per ' + per + ')');
    if (A.layer[r] !== 0xffff) add('layer', meta.layers[A.layer[r]]);
    add('allocated', A.aop[r] >= 0 ? 'in op ' + opLabel(A.aop[r]) : 'outside any op');
    add('freed', (A.flags[r] & 128) ? 'never (live at the end)' : (A.fop[r] >= 0 ? 'in op ' + opLabel(A.fop[r]) : 'outside any op'));
    const box = el('div');
    box.appendChild(dl);
    for (const [label, s] of [['allocation stack', A.astack[r]], ['free stack', A.fstack[r]]]) {
      if (!s) continue;
      box.appendChild(el('div', label, 'muted'));
      box.appendChild(el('pre', meta.strings[s]));
    }
    return box;
  }

  function showDetails(node) {
    const d = $('details');
    d.replaceChildren(node);
  }

  function pickAt(cssX, cssY) {
    const x = Math.floor((cssX - MARGIN.left) * dpr), y = Math.floor((cssY - MARGIN.top) * dpr);
    if (x < 0 || y < 0 || x >= W || y >= H) return -1;
    return pick[y * W + x];
  }

  function opUnder(cssX, cssY) {
    const top = MARGIN.top + H / dpr + 4;
    if (cssY < top || cssY > top + TRACK_H * 2 + 2 || cssX < MARGIN.left) return -1;
    const t = state.view.x0 + (cssX - MARGIN.left) / (W / dpr) * (state.view.x1 - state.view.x0);
    return opAt(t);
  }

  function onHover(e) {
    const rect = canvas.getBoundingClientRect();
    const x = e.clientX - rect.left, y = e.clientY - rect.top;
    const tip = $('tip');
    const r = pickAt(x, y);
    if (r >= 0) {
      if (r !== state.hover) {
        state.hover = r;
        showDetails(detailsOf(r));
        requestDraw();
      }
      tip.textContent = displayName(r) + '\n' + meta.roles[roleIdx(r)] + ' · ' + hex(A.addr[r]) + ' – ' + hex(A.addr[r] + A.size[r]) + ' · ' + fmtBytes(A.total[r]);
      tip.hidden = false;
      tip.style.left = Math.min(x + 14, rect.width - 300) + 'px';
      tip.style.top = (y + 14) + 'px';
      return;
    }
    const o = opUnder(x, y);
    if (o >= 0) {
      tip.textContent = 'op ' + opLabel(o);
      tip.hidden = false;
      tip.style.left = Math.min(x + 14, rect.width - 300) + 'px';
      tip.style.top = (y - 30) + 'px';
      return;
    }
    tip.hidden = true;
    if (state.hover !== -1) { state.hover = -1; requestDraw(); }
  }

  // ---- interaction --------------------------------------------------------------------------
  function zoom(cssX, cssY, factor, axes) {
    const v = state.view;
    const fx = (cssX - MARGIN.left) / (W / dpr), fy = 1 - (cssY - MARGIN.top) / (H / dpr);
    if (axes.x) {
      const t = v.x0 + fx * (v.x1 - v.x0);
      const span = Math.max((v.x1 - v.x0) * factor, 2);
      v.x0 = t - fx * span;
      v.x1 = v.x0 + span;
    }
    if (axes.y) {
      const a = v.y0 + fy * (v.y1 - v.y0);
      const span = Math.max((v.y1 - v.y0) * factor, 16);
      v.y0 = a - fy * span;
      v.y1 = v.y0 + span;
    }
    requestDraw();
  }

  function installInteraction() {
    canvas.addEventListener('wheel', (e) => {
      e.preventDefault();
      const rect = canvas.getBoundingClientRect();
      const d = e.deltaY || e.deltaX;
      const factor = Math.exp(Math.max(-3, Math.min(3, d * 0.0015)));
      const both = e.ctrlKey || e.metaKey;
      zoom(e.clientX - rect.left, e.clientY - rect.top, factor, { x: both || !e.shiftKey, y: both || e.shiftKey });
    }, { passive: false });
    let drag = null;
    canvas.addEventListener('mousedown', (e) => {
      drag = { x: e.clientX, y: e.clientY, v: Object.assign({}, state.view) };
    });
    window.addEventListener('mouseup', () => { drag = null; });
    canvas.addEventListener('mousemove', (e) => {
      if (drag && (e.buttons & 1)) {
        const v = state.view, s = drag.v;
        const dt = (e.clientX - drag.x) / (W / dpr) * (s.x1 - s.x0);
        const da = (e.clientY - drag.y) / (H / dpr) * (s.y1 - s.y0);
        v.x0 = s.x0 - dt; v.x1 = s.x1 - dt;
        v.y0 = s.y0 + da; v.y1 = s.y1 + da;
        requestDraw();
        return;
      }
      onHover(e);
    });
    canvas.addEventListener('mouseleave', () => { $('tip').hidden = true; });
    canvas.addEventListener('dblclick', () => { fitView(); requestDraw(); });
    window.addEventListener('resize', () => { resize(); requestDraw(); });
  }

  // ---- panels and controls ------------------------------------------------------------------
  function fillSelect(sel, options, value) {
    sel.replaceChildren();
    for (const [v, label] of options) {
      const o = el('option', label);
      o.value = String(v);
      sel.appendChild(o);
    }
    sel.value = String(value);
  }

  let spacesCache = null;
  function spacesPresent() {
    if (spacesCache) return spacesCache;
    const seen = new Set();
    for (let r = 0; r < N; r++) seen.add(spaceIdx(r));
    for (const f of meta.findings) seen.add(meta.spaces.indexOf(f.space));
    const list = meta.spaces.filter((_, i) => seen.has(i));
    spacesCache = list.length ? list : ['dram'];
    return spacesCache;
  }

  function unitOptions() {
    const g = meta.geometry;
    if (state.space === 'dram' || state.space === 'trace') {
      const opts = [[ALL, 'every bank (folded)']];
      for (let b = 0; b < g.dram_banks; b++) opts.push([b, 'bank ' + b]);
      return opts;
    }
    const opts = [[ALL, 'lock-step (every core)']];
    for (const c of g.l1_bank_cores) opts.push([(c.x << 16) | c.y, 'core (' + c.x + ',' + c.y + ')']);
    return opts;
  }

  function syncControls() {
    fillSelect($('chip'), meta.devices.map((d, i) => [i, 'device ' + d]), state.chip);
    fillSelect($('space'), spacesPresent().map((s) => [s, s]), state.space);
    fillSelect($('unit'), unitOptions(), state.unit);
    const mesh = $('mesh');
    mesh.style.gridTemplateColumns = 'repeat(' + Math.max(1, meta.mesh_cols) + ', 1fr)';
    for (const b of mesh.children) b.classList.toggle('sel', Number(b.dataset.slot) === state.chip);
    renderPeaks();
  }

  function setView(changes, keepView) {
    Object.assign(state, changes);
    if ('space' in changes && !('unit' in changes)) state.unit = ALL;
    rebuild();
    if (!keepView) fitView();
    syncControls();
    requestDraw();
  }

  function renderRoles() {
    const box = $('roles');
    meta.roles.forEach((name, i) => {
      const label = el('label');
      const cb = el('input');
      cb.type = 'checkbox';
      cb.checked = true;
      cb.addEventListener('change', () => {
        if (cb.checked) state.roles.add(i); else state.roles.delete(i);
        setView({}, true);
      });
      const sw = el('span', null, 'sw');
      sw.style.background = ROLE_COLORS[i];
      label.append(cb, sw, document.createTextNode(name));
      box.appendChild(label);
      state.roles.add(i);
    });
  }

  function renderLayers() {
    const opts = [[-1, 'all layers']];
    meta.layers.map((n, i) => [n, i]).sort((a, b) => a[0] - b[0]).forEach(([n, i]) => opts.push([i, 'layer ' + n]));
    fillSelect($('layer'), opts, -1);
  }

  function renderMesh() {
    const mesh = $('mesh');
    const counts = new Array(meta.devices.length).fill(0);
    for (const f of meta.findings) {
      const chips = f.chip === null || f.chip === undefined ? (f.chips.length ? f.chips : meta.devices.map((_, i) => i)) : [f.chip, ...f.chips.filter((c) => c !== f.chip)];
      for (const c of chips) if (c < counts.length) counts[c] += 1;
    }
    meta.devices.forEach((d, i) => {
      const b = el('button', 'device ' + d + (counts[i] ? ' · ' + counts[i] + ' finding' + (counts[i] > 1 ? 's' : '') : ''));
      b.type = 'button';
      b.dataset.slot = String(i);
      if (counts[i]) b.classList.add('hit');
      b.addEventListener('click', () => setView({ chip: i }));
      mesh.appendChild(b);
    });
  }

  function renderPeaks() {
    const t = $('peaks');
    t.replaceChildren();
    $('peakchip').textContent = '(device ' + deviceOf(state.chip) + ')';
    const head = el('tr');
    for (const h of ['space', 'peak', 'of capacity', 'at op']) head.appendChild(el('th', h));
    t.appendChild(head);
    for (const p of meta.peaks) {
      if (p.chip !== state.chip || p.bytes === 0) continue;
      const tr = el('tr', null, 'click');
      tr.appendChild(el('td', p.space));
      tr.appendChild(el('td', fmtBytes(p.bytes)));
      tr.appendChild(el('td', p.capacity ? (100 * p.bytes / p.capacity).toFixed(1) + ' %' : ''));
      tr.appendChild(el('td', opLabel(p.op) || 't ' + p.t));
      tr.title = 'show the map at the peak';
      tr.addEventListener('click', () => {
        setView({ space: p.space });
        const span = Math.max(meta.t_end / 20, 10);
        state.view.x0 = p.t - span / 2;
        state.view.x1 = p.t + span / 2;
        requestDraw();
      });
      t.appendChild(tr);
    }
    const totals = Object.entries(meta.mesh_peaks || {}).filter(([, b]) => b > 0);
    if (totals.length) {
      const tr = el('tr');
      const td = el('td', 'whole mesh: ' + totals.map(([sp, b]) => sp + ' ' + fmtBytes(b)).join(' · '), 'muted');
      td.colSpan = 4;
      tr.appendChild(td);
      t.appendChild(tr);
    }
  }

  function renderFindings() {
    const list = $('findings');
    $('nfind').textContent = '(' + meta.findings.length + ')';
    if (!meta.findings.length) list.appendChild(el('li', 'No findings.', 'muted'));
    meta.findings.slice(0, MAX_LISTED_FINDINGS).forEach((f, i) => {
      const li = el('li');
      li.dataset.index = String(i);
      const top = el('div');
      top.append(el('span', f.kind, 'kind'), document.createTextNode(' ' + (f.culprit || 'no culprit op') + (f.count > 1 ? ' ×' + f.count : '')));
      li.appendChild(top);
      if (f.victim_name) li.appendChild(el('div', 'victim: ' + f.victim_name));
      if (f.related_name) li.appendChild(el('div', (f.relation || 'related') + ': ' + f.related_name, 'muted'));
      li.appendChild(el('div', f.place + ' @ ' + hex(f.address) + ' (' + fmtBytes(f.size) + ')', 'muted'));
      li.appendChild(el('div', f.mechanism, 'mech'));
      li.addEventListener('click', () => focusFinding(i));
      list.appendChild(li);
    });
    if (meta.findings.length > MAX_LISTED_FINDINGS) {
      list.appendChild(el('li', (meta.findings.length - MAX_LISTED_FINDINGS) + ' more findings: see the JSON report', 'muted'));
    }
  }

  function findingChip(f) {
    if (f.chip !== null && f.chip !== undefined) return f.chip;
    return f.chips && f.chips.length ? f.chips[0] : state.chip;
  }

  // Pans and zooms to the culprit op and the damaged addresses, on the finding's chip and space.
  function focusFinding(i) {
    const f = meta.findings[i];
    let unit = ALL;
    const v = f.victim;
    if (f.unit !== null && f.unit !== undefined && !(v >= 0 && A.units[v] === 0)) unit = f.unit;
    state.selected = i;
    setView({ chip: findingChip(f), space: f.space, unit });
    let t0, t1;
    if (f.op >= 0) { t0 = O.t0[f.op]; t1 = O.t1[f.op]; } else if (v >= 0) { t0 = A.t0[v]; t1 = A.t1[v]; } else { t0 = 0; t1 = meta.t_end; }
    const w = Math.max(t1 - t0, 1);
    const tpad = Math.max(w * 3, meta.t_end * 0.002, 8);
    let lo = f.address, hi = f.address + Math.max(f.size, 1);
    // The victim and the related buffer join the view when they are near the damage; a far
    // one would shrink the damaged bytes to nothing (it is still outlined, a zoom-out away).
    for (const r of [f.victim, f.related]) {
      if (r < 0) continue;
      const span = Math.max(hi - lo, 4096) * 16;
      const a0 = A.addr[r], a1 = a0 + A.size[r];
      if (a1 - a0 <= span && a0 >= lo - span && a1 <= hi + span) { lo = Math.min(lo, a0); hi = Math.max(hi, a1); }
    }
    const apad = Math.max((hi - lo) * 0.6, 2048);
    state.view = { x0: t0 - tpad, x1: t1 + tpad, y0: Math.max(0, lo - apad), y1: hi + apad };
    for (const li of $('findings').children) li.classList.toggle('sel', li.dataset.index === String(i));
    const fnode = el('div');
    fnode.append(el('div', f.kind + ' at ' + f.place, 'kind'), el('div', f.mechanism, 'mech'));
    showDetails(fnode);
    requestDraw();
  }

  function installControls() {
    $('chip').addEventListener('change', (e) => setView({ chip: Number(e.target.value) }));
    $('space').addEventListener('change', (e) => setView({ space: e.target.value }));
    $('unit').addEventListener('change', (e) => setView({ unit: e.target.value === ALL ? ALL : Number(e.target.value) }, true));
    $('layer').addEventListener('change', (e) => setView({ layer: Number(e.target.value) }, true));
    $('fit').addEventListener('click', () => { fitView(); requestDraw(); });
    let timer = 0;
    $('name').addEventListener('input', (e) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        const q = e.target.value.trim().toLowerCase();
        nameOk = q ? Uint8Array.from(meta.strings, (s) => s.toLowerCase().includes(q) ? 1 : 0) : null;
        setView({ name: q }, true);
      }, 150);
    });
  }

  // ---- self-test (?selftest=1): drives the page the way a person would and reports in the DOM ----
  async function selftest(perf) {
    const out = { ok: true, checks: {}, perf };
    const check = (name, pass, detail) => {
      out.checks[name] = { pass: !!pass, detail: detail === undefined ? null : detail };
      if (!pass) out.ok = false;
    };
    // Headless browsers may not run animation frames; draw now instead of waiting for one.
    const frame = () => new Promise((res) => setTimeout(() => { flushDraw(); res(); }, 0));
    check('decoded', N === meta.allocs && N > 0, { allocs: N, ops: NOPS });
    const items = document.querySelectorAll('#findings li[data-index]');
    check('findings_listed', meta.findings.length > 0 && items.length === Math.min(meta.findings.length, MAX_LISTED_FINDINGS), items.length);
    if (items.length) {
      items[0].click();
      await frame();
      await frame();
      const f = meta.findings[0];
      const v = state.view;
      check('finding_selects_chip', state.chip === findingChip(f) && Number($('chip').value) === state.chip, state.chip);
      check('finding_selects_space', state.space === f.space && $('space').value === f.space, state.space);
      const ot0 = f.op >= 0 ? O.t0[f.op] : 0, ot1 = f.op >= 0 ? O.t1[f.op] : meta.t_end;
      check('culprit_op_in_view', f.op >= 0 && ot0 >= v.x0 && ot1 <= v.x1, { op: opLabel(f.op), view: [v.x0, v.x1], op_t: [ot0, ot1] });
      check('address_in_view', f.address >= v.y0 && f.address + f.size <= v.y1, { address: f.address, view: [v.y0, v.y1] });
      // The culprit's pixels must be red on the canvas.
      const cx = Math.round(tx((ot0 + ot1) / 2) * dpr), cy = Math.round(ty(f.address + Math.max(f.size, 1) / 2) * dpr);
      const p = ctx.getImageData(cx, cy, 1, 1).data;
      check('culprit_drawn', p[0] > 150 && p[1] < 120, Array.from(p));
      if (f.victim >= 0) {
        const [x, y, w, h] = rowRect(f.victim);
        const rect = canvas.getBoundingClientRect();
        const hx = Math.min(Math.max(x + w / 2, MARGIN.left + 1), MARGIN.left + W / dpr - 2);
        let hy = Math.min(Math.max(y + h / 2, MARGIN.top + 1), MARGIN.top + H / dpr - 2);
        // Hover somewhere on the victim that the finding's marks do not cover.
        for (const cand of [y + 2, y + h - 2, y + h / 2]) {
          const cy2 = Math.min(Math.max(cand, MARGIN.top + 1), MARGIN.top + H / dpr - 2);
          if (pickAt(hx, cy2) === f.victim) { hy = cy2; break; }
        }
        canvas.dispatchEvent(new MouseEvent('mousemove', { clientX: rect.left + hx, clientY: rect.top + hy, bubbles: true }));
        await frame();
        const text = $('details').textContent;
        check('hover_shows_victim', text.includes(displayName(f.victim)), text.slice(0, 200));
      }
    }
    let colored = 0;
    for (let i = 0; i < px32.length; i += 7) if (px32[i] !== rgba(BG)) colored++;
    check('map_has_pixels', colored > 50, colored);
    const hostile = meta.strings.filter((s) => s.includes('<'));
    const shown = Array.from(document.querySelectorAll('#findings li, #details')).map((n) => n.textContent).join('\n');
    check('no_injected_markup', document.getElementsByTagName('script').length === scriptsAtStart &&
      document.getElementsByTagName('img').length === 0 && window.__ttsan_pwned === undefined,
      { scripts: document.getElementsByTagName('script').length, hostile: hostile.length });
    if (hostile.length) check('hostile_names_shown_as_text', hostile.some((s) => shown.includes(s)), hostile);
    // Zooming and panning must keep drawing without errors.
    const rect = canvas.getBoundingClientRect();
    canvas.dispatchEvent(new WheelEvent('wheel', { deltaY: 200, clientX: rect.left + MARGIN.left + 50, clientY: rect.top + 50, bubbles: true, cancelable: true }));
    await frame();
    out.perf.zoom_draw_ms = Math.round(state.lastDrawMs);
    canvas.dispatchEvent(new MouseEvent('dblclick', { bubbles: true }));
    await frame();
    out.perf.fit_draw_ms = Math.round(state.lastDrawMs);
    check('no_console_errors', errors.length === 0, errors.slice(0, 5));
    // Leave the page on the first finding, which is what a screenshot should show.
    if (items.length) items[0].click();
    flushDraw();
    $('selftest').textContent = JSON.stringify(out);
    document.title = 'selftest ' + (out.ok ? 'ok' : 'failed');
  }

  // Links can open a given view: ?chip=SLOT&space=l1&unit=x,y (or unit=BANK) or ?finding=N.
  function applyUrlView() {
    const f = Number(params.get('finding'));
    if (params.has('finding') && f >= 0 && f < meta.findings.length) {
      focusFinding(f);
      flushDraw();
      return;
    }
    const changes = {};
    const chip = Number(params.get('chip'));
    if (params.has('chip') && chip >= 0 && chip < meta.devices.length) changes.chip = chip;
    const space = params.get('space');
    if (space && meta.spaces.includes(space)) changes.space = space;
    const unit = params.get('unit');
    if (unit) {
      const xy = unit.split(',').map(Number);
      if (xy.length === 2 && xy.every((v) => v >= 0)) changes.unit = (xy[0] << 16) | xy[1];
      else if (xy.length === 1 && xy[0] >= 0) changes.unit = xy[0];
    }
    if (Object.keys(changes).length) {
      setView(changes);
      flushDraw();
    }
  }

  // ---- start --------------------------------------------------------------------------------
  async function main() {
    const tStart = performance.now();
    canvas = $('map');
    ctx = canvas.getContext('2d');
    const node = $('ttsan-data');
    const block = await gunzip(base64Bytes(node.textContent));
    node.textContent = '';
    const tDecoded = performance.now();
    ({ meta, cols: A } = parseBlock(block));
    const c = A;
    A = {}; O = {};
    for (const [k, v] of Object.entries(c)) {
      const [table, field] = k.split('.');
      (table === 'allocs' ? A : O)[field] = v;
    }
    N = meta.allocs;
    NOPS = meta.ops;
    unitSets = meta.unit_sets.map((s) => new Set(s));
    const pal = ROLE_COLORS.map(rgba), edge = ROLE_COLORS.map((h) => rgba(darker(h)));
    rowColor = new Uint32Array(N);
    rowEdge = new Uint32Array(N);
    for (let r = 0; r < N; r++) { rowColor[r] = pal[A.flags[r] & 7]; rowEdge[r] = edge[A.flags[r] & 7]; }
    $('capture').textContent = meta.arch + ' ' + meta.mesh_rows + 'x' + meta.mesh_cols + ' · ' + meta.command + ' · ' +
      N.toLocaleString() + ' allocations, ' + NOPS.toLocaleString() + ' ops';
    renderRoles();
    renderLayers();
    renderMesh();
    renderFindings();
    installControls();
    installInteraction();
    resize();
    const spaces = spacesPresent();
    const first = meta.findings[0];
    state.space = first ? first.space : spaces[0];
    state.chip = first ? findingChip(first) : 0;
    rebuild();
    fitView();
    syncControls();
    draw();
    const tRendered = performance.now();
    applyUrlView();
    const perf = {
      first_render_ms: Math.round(tRendered),
      decode_ms: Math.round(tDecoded - tStart),
      setup_and_draw_ms: Math.round(tRendered - tDecoded),
      draw_ms: Math.round(state.lastDrawMs),
      allocations: N,
      ops: NOPS,
    };
    $('perf').textContent = JSON.stringify(perf);
    document.body.dataset.rendered = '1';
    if (params.get('selftest') === '1') await selftest(perf);
  }

  main().catch((e) => {
    console.error(e);
    const wrap = $('mapwrap');
    wrap.replaceChildren(el('div', 'ttsan could not show this map: ' + (e && e.message ? e.message : e), 'err'));
    if (params.get('selftest') === '1') {
      $('selftest').textContent = JSON.stringify({ ok: false, error: String(e && e.message ? e.message : e), errors });
    }
  });
})();
