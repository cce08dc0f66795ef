#!/usr/bin/env node
// Draws docs/bench-latency.svg from bench-results/*.json (median bar, p99 tick)
// and appends it to BENCHMARKS.md. Usage: node scripts/bench-chart.js <results-dir> <BENCHMARKS.md>
'use strict';
const fs = require('fs');
const path = require('path');

const [dir = 'bench-results', md = 'BENCHMARKS.md'] = process.argv.slice(2);
const read = (name) => {
  try { return JSON.parse(fs.readFileSync(path.join(dir, `${name}.json`), 'utf8')); } catch { return undefined; }
};
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN;
};
const groups = [];
const plugin = read('volume-plugin');
if (plugin && plugin.raw_samples_ms) {
  const labels = {
    local_new: 'local driver, new volume', flocker_new: 'Flocker, new volume',
    local_existing: 'local driver, existing volume', flocker_existing: 'Flocker, existing volume',
    raw_loop_new: 'raw loopback, new (truncate…detach)', raw_loop_existing: 'raw loopback, existing',
  };
  groups.push({ title: 'docker run --rm -v VOL:/data IMG true', rows: Object.entries(labels)
    .filter(([k]) => plugin.raw_samples_ms[k])
    .map(([k, label]) => ({ label, median: pct(plugin.raw_samples_ms[k], 50), p99: pct(plugin.raw_samples_ms[k], 99), flocker: k.startsWith('flocker') })) });
}
const move = read('move');
if (move) {
  const row = (k, label, flocker) => move[k] && ({ label, median: move[k].median_ms, p99: move[k].samples_ms ? pct(move[k].samples_ms, 99) : move[k].p90_ms, flocker });
  groups.push({ title: 'Moving a volume between hosts', rows: [
    row('rawSequence', 'raw umount+losetup -d, losetup+mount', false),
    row('apiMove', 'Flocker API move', true),
    row('dockerRunLocalVolume', 'docker run, local volume', false),
    row('dockerRunMove', 'docker run on B, Flocker volume idle on A', true),
  ].filter(Boolean) });
}
const agent = read('dataset-agent');
if (agent) {
  const find = (o, re) => Object.entries(o).find(([k, v]) => re.test(k) && v && typeof v === 'object' && 'median_ms' in v);
  const api = find(agent, /api|create.*mount/i);
  const raw = find(agent, /raw/i);
  if (api && raw) groups.push({ title: 'Create a 1 GiB volume until mounted', rows: [
    { label: 'raw truncate+losetup+mkfs+mount', median: raw[1].median_ms, p99: raw[1].p99_ms ?? raw[1].max_ms, flocker: false },
    { label: 'Flocker API create → mounted', median: api[1].median_ms, p99: api[1].p99_ms ?? api[1].max_ms, flocker: true },
  ] });
}
if (groups.length === 0) process.exit(0);

const W = 960, left = 330, barH = 18, gap = 8, titleH = 30;
const rowsH = groups.reduce((n, g) => n + titleH + g.rows.length * (barH + gap), 0) + 40;
let y = 20;
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');
const parts = [];
for (const g of groups) {
  const max = Math.max(...g.rows.map((r) => Math.max(r.median, r.p99 || 0))) * 1.1;
  const x = (v) => left + ((W - left - 190) * v) / max;
  parts.push(`<text x="10" y="${y + 16}" font-weight="bold">${esc(g.title)}</text>`);
  y += titleH;
  for (const r of g.rows) {
    parts.push(`<text x="${left - 8}" y="${y + 13}" text-anchor="end">${esc(r.label)}</text>`);
    parts.push(`<rect x="${left}" y="${y}" width="${(x(r.median) - left).toFixed(1)}" height="${barH}" fill="${r.flocker ? '#1f5fa8' : '#9aa5b1'}"/>`);
    if (r.p99 > 0) parts.push(`<line x1="${x(r.p99).toFixed(1)}" x2="${x(r.p99).toFixed(1)}" y1="${y - 2}" y2="${y + barH + 2}" stroke="#c0392b" stroke-width="2"/>`);
    parts.push(`<text x="${(Math.max(x(r.median), r.p99 > 0 ? x(r.p99) : 0) + 6).toFixed(1)}" y="${y + 13}">${Math.round(r.median)} ms${r.p99 > 0 ? ` (p99 ${Math.round(r.p99)})` : ''}</text>`);
    y += barH + gap;
  }
}
parts.push(`<text x="10" y="${rowsH - 10}" fill="#555">Bars: median; red tick: p99. Blue: Flocker; grey: baseline measured in the same run.</text>`);
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${rowsH}" font-family="sans-serif" font-size="13">\n<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n</svg>\n`;
fs.mkdirSync('docs', { recursive: true });
fs.writeFileSync('docs/bench-latency.svg', svg);
fs.appendFileSync(md, '\n## Latency at a glance\n\n![Median and p99 latencies of Flocker operations against their baselines](docs/bench-latency.svg)\n');
