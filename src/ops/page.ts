import { createHash } from 'node:crypto';

/**
 * GET /: the status page for a technician on site. One self-contained
 * document (no build step, no framework, nothing fetched but /status and
 * /status/history from the same origin): it reads what `edgehaul status`
 * reads and redraws every REFRESH_MS. Read-only.
 *
 * Payload text (dead-letter previews, topics, reasons) is only ever set with
 * textContent, never parsed as HTML; the Content-Security-Policy allows only
 * this script and this style (by their hashes), so even a mistake there could
 * not run injected script.
 */
export const REFRESH_MS = 2000;

const STYLE = `
:root { font-family: system-ui, sans-serif; color: #1d2430; background: #f4f6f8; }
body { margin: 0 auto; max-width: 1100px; padding: 12px 16px; }
h1 { font-size: 1.3em; margin: 4px 0; }
h2 { font-size: 1em; margin: 0 0 6px; color: #4a5568; text-transform: uppercase; letter-spacing: .04em; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 10px; }
section { background: #fff; border-radius: 6px; padding: 10px 12px; box-shadow: 0 1px 2px #0002; }
.wide { grid-column: 1 / -1; }
.big { font-size: 1.6em; font-weight: 600; }
dl { display: grid; grid-template-columns: auto 1fr; gap: 2px 10px; margin: 0; }
dt { color: #4a5568; } dd { margin: 0; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 10px; color: #fff; font-weight: 600; }
.ok { background: #2f855a; } .degraded { background: #b7791f; } .failing { background: #c53030; } .unknown { background: #718096; }
table { border-collapse: collapse; width: 100%; font-size: .9em; }
th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid #e2e8f0; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.preview { font-family: ui-monospace, monospace; word-break: break-all; white-space: pre-wrap; }
svg { width: 100%; height: 180px; }
.in { stroke: #3182ce; } .out { stroke: #38a169; } .line { fill: none; stroke-width: 1.5; }
.axis { stroke: #cbd5e0; } .label { font-size: 10px; fill: #4a5568; }
.legend-in { color: #3182ce; } .legend-out { color: #38a169; }
#error { color: #c53030; } .muted { color: #718096; }
meter { width: 100%; }
`;

const SCRIPT = `
'use strict';
const REFRESH_MS = ${REFRESH_MS};
const SVG = 'http://www.w3.org/2000/svg';
const $ = (id) => document.getElementById(id);
let historyEmpty = true;
let refreshes = 0;

function bytes(n) {
  if (typeof n !== 'number') return '-';
  if (n < 1024) return n + ' B';
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return v.toFixed(1) + ' ' + units[i];
}
function duration(secs) {
  if (typeof secs !== 'number') return '-';
  const s = Math.round(secs);
  if (s < 60) return s + ' s';
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return [d > 0 ? d + 'd' : '', h > 0 || d > 0 ? h + 'h' : '', m + 'm', (s % 60) + 's'].filter((x) => x !== '').join(' ');
}
function plain(v) { return v === null || v === undefined ? '-' : String(v); }
function path(obj, dotted) {
  return dotted.split('.').reduce((o, k) => (o !== null && o !== undefined ? o[k] : undefined), obj);
}
/** every element with data-field shows that field of /status, formatted by data-format; data-value holds the raw value */
function fill(s) {
  for (const el of document.querySelectorAll('[data-field]')) {
    const v = path(s, el.dataset.field);
    el.dataset.value = v === undefined || v === null ? '' : String(v);
    const f = el.dataset.format;
    el.textContent = f === 'bytes' ? bytes(v) : f === 'duration' ? duration(v) : plain(v);
  }
}
function text(tag, content, cls) {
  const el = document.createElement(tag);
  el.textContent = content;
  if (cls) el.className = cls;
  return el;
}
function row(cells) {
  const tr = document.createElement('tr');
  for (const c of cells) tr.append(c);
  return tr;
}
function render(s) {
  fill(s);
  const h = s.health || { status: 'unknown', reasons: [] };
  const badge = $('health');
  badge.textContent = h.status;
  badge.className = 'badge ' + (['ok', 'degraded', 'failing'].includes(h.status) ? h.status : 'unknown');
  const reasons = $('reasons');
  reasons.replaceChildren(...(h.reasons.length === 0 ? [text('li', 'nothing needs attention', 'muted')] : h.reasons.map((r) => text('li', r))));
  document.title = 'edgehaul ' + s.gateway_id + ': ' + h.status;

  const b = s.buffer;
  const meter = $('buffer-meter');
  meter.max = b.max_bytes;
  meter.value = b.bytes;
  $('buffer-fill').textContent = b.max_bytes > 0 ? ((100 * b.bytes) / b.max_bytes).toFixed(1) + '%' : '-';
  const eta = b.drain_eta_secs;
  $('drain-eta').dataset.value = eta === null || eta === undefined ? '' : String(eta);
  const live = s.upstream.connected && s.rates.out_events_per_sec > 0;
  $('drain-eta').textContent =
    b.events === 0 ? 'empty' : typeof eta === 'number' ? duration(eta) : live ? 'keeping up, not shrinking' : 'not draining';

  const up = s.upstream;
  $('kafka-state').textContent = up.connected ? 'connected' : 'NOT connected';
  $('kafka-state').className = 'badge ' + (up.connected ? 'ok' : 'failing');
  $('kafka-brokers').textContent = up.brokers.join(', ');
  const w = up.upload_window;
  $('upload-window').textContent = !w.configured ? 'always open (none configured)' : w.open ? 'open' : 'closed (priority >= ' + w.exempt_priority + ' still sent)';

  const sys = s.system || {};
  $('cpu-temp').textContent = typeof sys.cpu_temperature_celsius === 'number' ? sys.cpu_temperature_celsius + ' °C' : 'n/a';
  $('disk-path').textContent = sys.disk ? sys.disk.path : 'unknown';

  renderFlash(s);
  renderLosses(s);
  renderDeadLetters(s);
  $('updated').textContent = new Date().toLocaleTimeString();
  $('updated').dataset.uptime = String(s.uptime_secs);
}
/** flash wear (/status "flash"): who writes how much a day, the days of rated life left, the budget */
function renderFlash(s) {
  const dl = $('flash');
  const items = [['written by edgehaul since start', bytes(s.stats ? s.stats.disk_written_bytes_total : undefined)]];
  const f = s.flash;
  if (f && typeof f === 'object') {
    const perDay = (n) => (typeof n === 'number' ? bytes(n) + '/day' : 'measuring');
    items.push(['edgehaul a day', perDay(f.process_bytes_per_day)]);
    items.push(['device', f.device ? f.device.name + (f.device.partition ? ' (' + f.device.partition + ')' : '') : 'unknown: ' + (f.device_unknown_reason || '-')]);
    if (f.device) {
      items.push(['device a day', perDay(f.device_bytes_per_day)]);
      items.push(['device since boot', typeof f.device_written_bytes === 'number' ? bytes(f.device_written_bytes) : '-']);
    }
    items.push(['life left', typeof f.days_left === 'number' ? f.days_left + ' days of ' + bytes(f.endurance_bytes) : 'not known yet']);
    items.push(['write budget', typeof f.budget_bytes_per_day === 'number' ? bytes(f.budget_bytes_per_day) + '/day' : 'none']);
  }
  dl.replaceChildren(...items.flatMap(([k, v]) => [text('dt', k), text('dd', v)]));
}
function renderLosses(s) {
  const body = $('losses');
  const rows = [];
  const lost = (s.stats && s.stats.lost_events_total) || {};
  for (const [reason, byRoute] of Object.entries(lost)) {
    for (const [route, n] of Object.entries(byRoute || {})) {
      if (typeof n === 'number' && n > 0) rows.push([route, reason, n]);
    }
  }
  if (s.drops.unrouted_messages > 0) rows.push(['(no route)', 'unrouted', s.drops.unrouted_messages]);
  if (s.drops.oversize_messages > 0) rows.push(['(before routing)', 'oversize', s.drops.oversize_messages]);
  rows.sort((a, b) => b[2] - a[2]);
  body.replaceChildren(
    ...(rows.length === 0
      ? [row([text('td', 'nothing lost since start', 'muted')])]
      : rows.map(([route, reason, n]) => {
          const tr = row([text('td', route), text('td', reason), text('td', String(n), 'num')]);
          tr.dataset.route = route;
          tr.dataset.reason = reason;
          return tr;
        })),
  );
}
function renderDeadLetters(s) {
  const list = (s.dead_letters && s.dead_letters.recent) || [];
  $('dead-letters').replaceChildren(
    ...(list.length === 0
      ? [row([text('td', 'none since start', 'muted')])]
      : list.map((d) =>
          row([
            text('td', new Date(d.at).toLocaleTimeString()),
            text('td', d.route),
            text('td', d.topic),
            text('td', d.step),
            text('td', d.reason),
            text('td', d.payload_preview + ' (' + bytes(d.payload_bytes) + ')', 'preview'),
          ]),
        )),
  );
}
/** a step line per series: each sample covers [at - interval, at] */
function chart(hist, now) {
  const svg = $('chart');
  const W = 900, H = 160, L = 40, B = 14;
  const hour = now - hist.span_secs * 1000;
  const samples = hist.samples.filter((x) => x.at > hour);
  // the last hour, or since the first sample when the daemon is younger than that
  const first = samples.length > 0 ? samples[0].at - samples[0].interval_secs * 1000 : now;
  const from = Math.min(Math.max(hour, first), now - 1000);
  let max = 1;
  for (const x of samples) max = Math.max(max, x.in_events_per_sec, x.out_events_per_sec);
  const X = (t) => L + ((Math.min(Math.max(t, from), now) - from) / (now - from)) * (W - L);
  const Y = (v) => H - B - (v / max) * (H - B - 4);
  const line = (key) => {
    let d = '';
    let prevEnd = null;
    for (const x of samples) {
      const start = x.at - x.interval_secs * 1000;
      const y = Y(x[key]).toFixed(1);
      d += (prevEnd !== null && Math.abs(start - prevEnd) < 2000 ? 'L' : 'M') + X(start).toFixed(1) + ' ' + y + 'L' + X(x.at).toFixed(1) + ' ' + y;
      prevEnd = x.at;
    }
    return d;
  };
  const el = (tag, attrs, content) => {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (content !== undefined) e.textContent = content;
    return e;
  };
  svg.replaceChildren(
    el('line', { x1: L, y1: H - B, x2: W, y2: H - B, class: 'axis' }),
    el('line', { x1: L, y1: 4, x2: L, y2: H - B, class: 'axis' }),
    el('text', { x: L - 4, y: 12, 'text-anchor': 'end', class: 'label' }, max.toFixed(max < 10 ? 1 : 0)),
    el('text', { x: L - 4, y: H - B, 'text-anchor': 'end', class: 'label' }, '0'),
    el('text', { x: L, y: H, class: 'label' }, '-' + duration((now - from) / 1000)),
    el('text', { x: W, y: H, 'text-anchor': 'end', class: 'label' }, 'now'),
    el('path', { id: 'chart-in', class: 'line in', d: line('in_events_per_sec') }),
    el('path', { id: 'chart-out', class: 'line out', d: line('out_events_per_sec') }),
  );
  svg.dataset.samples = String(samples.length);
}
async function getJson(url) {
  const res = await fetch(url, { cache: 'no-store', credentials: 'same-origin' });
  if (!res.ok) throw new Error(url + ': HTTP ' + res.status);
  return res.json();
}
async function refresh() {
  try {
    const s = await getJson('status');
    render(s);
    // the history changes once per rate interval (10 s): read it every fifth refresh, or each time while it is empty
    if (historyEmpty || ++refreshes % 5 === 1) {
      const hist = await getJson('status/history');
      historyEmpty = hist.samples.length === 0;
      // the daemon's clock, not this computer's: a laptop's clock may be off
      chart(hist, Date.parse(s.started_at) + s.uptime_secs * 1000);
    }
    $('error').textContent = '';
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || '0') + 1);
  } catch (err) {
    $('error').textContent = 'cannot read the daemon: ' + err.message;
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}
refresh();
`;

const BODY = `
<header>
  <h1>edgehaul <span data-field="gateway_id"></span> <span id="health" class="badge unknown">…</span></h1>
  <div class="muted">version <span data-field="version"></span>, up <span data-field="uptime_secs" data-format="duration"></span>;
    refreshed <span id="updated">never</span> (every ${REFRESH_MS / 1000} s) <span id="error"></span></div>
  <ul id="reasons"></ul>
</header>
<div class="grid">
  <section><h2>Devices</h2><div class="big" data-field="devices.connected"></div><div class="muted">connected</div></section>
  <section><h2>Events per second</h2>
    <dl><dt class="legend-in">in</dt><dd data-field="rates.in_events_per_sec"></dd>
    <dt class="legend-out">out</dt><dd data-field="rates.out_events_per_sec"></dd>
    <dt>over</dt><dd><span data-field="rates.interval_secs"></span> s</dd></dl></section>
  <section><h2>Buffer</h2>
    <meter id="buffer-meter" min="0" value="0"></meter>
    <dl><dt>fill</dt><dd id="buffer-fill"></dd>
    <dt>events</dt><dd data-field="buffer.events"></dd>
    <dt>bytes</dt><dd><span data-field="buffer.bytes" data-format="bytes"></span> of <span data-field="buffer.max_bytes" data-format="bytes"></span></dd>
    <dt>oldest</dt><dd data-field="buffer.oldest_age_secs" data-format="duration"></dd>
    <dt>drains in</dt><dd id="drain-eta"></dd></dl></section>
  <section><h2>Kafka</h2>
    <div><span id="kafka-state" class="badge unknown">…</span></div>
    <dl><dt>brokers</dt><dd id="kafka-brokers"></dd>
    <dt>lag</dt><dd data-field="upstream.lag_secs" data-format="duration"></dd>
    <dt>upload window</dt><dd id="upload-window"></dd>
    <dt>sent</dt><dd data-field="stats.sent_events_total"></dd>
    <dt>send errors</dt><dd data-field="stats.send_errors_total"></dd></dl></section>
  <section><h2>Flash writes</h2><dl id="flash"></dl></section>
  <section><h2>System</h2>
    <dl><dt>CPU</dt><dd><span data-field="system.cpu_load_percent"></span> %</dd>
    <dt>load avg</dt><dd data-field="system.load_avg_1m"></dd>
    <dt>temperature</dt><dd id="cpu-temp"></dd>
    <dt>edgehaul RSS</dt><dd data-field="system.memory.process_rss_bytes" data-format="bytes"></dd>
    <dt>memory free</dt><dd><span data-field="system.memory.available_bytes" data-format="bytes"></span> of <span data-field="system.memory.total_bytes" data-format="bytes"></span></dd>
    <dt>disk free</dt><dd><span data-field="system.disk.free_bytes" data-format="bytes"></span> of <span data-field="system.disk.size_bytes" data-format="bytes"></span></dd>
    <dt>disk</dt><dd id="disk-path"></dd></dl></section>
  <section class="wide"><h2>Events per second, last hour or since start (<span class="legend-in">in</span>, <span class="legend-out">out</span>)</h2>
    <svg id="chart" viewBox="0 0 900 160" role="img" aria-label="events in and out per second over the last hour"></svg></section>
  <section class="wide"><h2>Losses by route and reason</h2>
    <table><thead><tr><th>route</th><th>reason</th><th class="num">events</th></tr></thead><tbody id="losses"></tbody></table></section>
  <section class="wide"><h2>Last dead letters (<span data-field="dead_letters.total"></span> since start)</h2>
    <table><thead><tr><th>time</th><th>route</th><th>topic</th><th>step</th><th>reason</th><th>payload</th></tr></thead><tbody id="dead-letters"></tbody></table></section>
</div>
`;

const sha256 = (text: string): string => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

/** The page's document. */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgehaul</title>
<style>${STYLE}</style>
</head>
<body>${BODY}<script>${SCRIPT}</script>
</body>
</html>
`;

/** Only this page's own script and style run; it talks only to its own origin. */
export const PAGE_CSP = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');
