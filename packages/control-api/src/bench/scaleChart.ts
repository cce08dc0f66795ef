/**
 * Pure: the scale benchmark's chart — one small panel per metric, x = simulated agents (nodes),
 * one line per configuration (file store, etcd with agents on one replica, spread over replicas),
 * the target as a dashed line. Returns the SVG text.
 */

export interface ChartSeries {
  label: string;
  color: string;
  /** [agents, value]; a NaN value (not measured, or not every agent reached) leaves a gap. */
  points: [number, number][];
}

export interface ChartPanel {
  title: string;
  unit: string;
  target?: number;
  series: ChartSeries[];
}

const W = 300;
const H = 190;
const PAD = { left: 48, right: 12, top: 26, bottom: 30 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A round axis maximum at or above `v` (1, 2, 5 × 10^k). */
export function niceMax(v: number): number {
  if (!(v > 0) || !Number.isFinite(v)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v: number): string {
  return v >= 1000 ? `${Math.round(v / 100) / 10}k` : String(Math.round(v * 10) / 10);
}

function panel(p: ChartPanel, x0: number, y0: number, xs: number[]): string {
  const values = p.series.flatMap((s) => s.points.map(([, v]) => v)).filter((v) => Number.isFinite(v));
  const yMax = niceMax(Math.max(...values, p.target ?? 0, 0));
  const xMax = Math.max(...xs);
  const iw = W - PAD.left - PAD.right;
  const ih = H - PAD.top - PAD.bottom;
  const sx = (x: number): number => x0 + PAD.left + (xMax > 0 ? (x / xMax) * iw : 0);
  const sy = (y: number): number => y0 + PAD.top + ih - (y / yMax) * ih;
  const out: string[] = [];
  out.push(`<text x="${x0 + PAD.left}" y="${y0 + 16}" font-weight="bold">${esc(p.title)} (${esc(p.unit)})</text>`);
  out.push(
    `<line x1="${sx(0)}" y1="${sy(0)}" x2="${sx(xMax)}" y2="${sy(0)}" stroke="#888"/>` +
      `<line x1="${sx(0)}" y1="${sy(0)}" x2="${sx(0)}" y2="${sy(yMax)}" stroke="#888"/>`,
  );
  for (const t of [0, yMax / 2, yMax])
    out.push(`<text x="${sx(0) - 4}" y="${sy(t) + 4}" text-anchor="end" fill="#555">${fmt(t)}</text>`);
  for (const x of xs)
    out.push(`<text x="${sx(x)}" y="${sy(0) + 14}" text-anchor="middle" fill="#555">${fmt(x)}</text>`);
  if (p.target !== undefined)
    out.push(
      `<line x1="${sx(0)}" y1="${sy(p.target)}" x2="${sx(xMax)}" y2="${sy(p.target)}" stroke="#c00" stroke-dasharray="4 3"/>` +
        `<text x="${sx(xMax)}" y="${sy(p.target) - 3}" text-anchor="end" fill="#c00">target ${fmt(p.target)}</text>`,
    );
  for (const s of p.series) {
    // Consecutive measured points are joined; a NaN breaks the line.
    let run: string[] = [];
    const flush = (): void => {
      if (run.length > 1)
        out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${run.join(' ')}"/>`);
      run = [];
    };
    for (const [x, v] of [...s.points].sort((a, b) => a[0] - b[0])) {
      if (!Number.isFinite(v)) {
        flush();
        continue;
      }
      const c = `${sx(x).toFixed(1)},${sy(Math.min(v, yMax)).toFixed(1)}`;
      run.push(c);
      out.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(Math.min(v, yMax)).toFixed(1)}" r="3" fill="${s.color}"/>`);
    }
    flush();
  }
  return out.join('\n');
}

export function scaleChartSvg(title: string, panels: ChartPanel[], columns = 3): string {
  const xs = [...new Set(panels.flatMap((p) => p.series.flatMap((s) => s.points.map(([x]) => x))))].sort(
    (a, b) => a - b,
  );
  const rows = Math.ceil(panels.length / columns);
  const legend = [...new Map(panels.flatMap((p) => p.series.map((s) => [s.label, s.color] as const))).entries()];
  const width = columns * W;
  const height = 30 + rows * H + 20 + legend.length * 16;
  const parts = panels.map((p, i) => panel(p, (i % columns) * W, 30 + Math.floor(i / columns) * H, xs));
  const legendY = 30 + rows * H + 10;
  const legendParts = legend.map(
    ([label, color], i) =>
      `<rect x="10" y="${legendY + i * 16}" width="12" height="4" fill="${color}"/>` +
      `<text x="28" y="${legendY + i * 16 + 6}">${esc(label)}</text>`,
  );
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `font-family="sans-serif" font-size="11">\n<rect width="100%" height="100%" fill="white"/>\n` +
    `<text x="10" y="18" font-size="13" font-weight="bold">${esc(title)}</text>\n` +
    `<text x="${width - 10}" y="18" text-anchor="end" fill="#555">x: simulated agents (nodes)</text>\n` +
    `${parts.join('\n')}\n${legendParts.join('\n')}\n</svg>\n`
  );
}
