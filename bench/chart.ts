// A small SVG chart for the headline benchmark: throughput per target on the left, latency percentiles
// per target on the right, both on log scales (PocketBase, the sidecar and the floor differ by orders of
// magnitude).

export interface ChartTarget { name: string; rps: number; p50: number; p95: number; p99: number }

const COLORS = ['#8a8f98', '#2f7ed8', '#1aa179', '#c9a227'];
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n >= 10 ? n.toFixed(1) : n.toFixed(2));

export function chartSvg(title: string, subtitle: string, targets: ChartTarget[]): string {
  const W = 960;
  const H = 420;
  const top = 80;
  const bottom = 340;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="20" y="28" font-size="17" font-weight="600">${esc(title)}</text>`);
  out.push(`<text x="20" y="48" fill="#555">${esc(subtitle)}</text>`);

  // Left: throughput, log scale (the floor is orders of magnitude above PocketBase).
  const lx = 50;
  const lw = 380;
  const rpsLo = Math.pow(10, Math.floor(Math.log10(Math.max(1, Math.min(...targets.map((t) => t.rps))))));
  const rpsHi = Math.pow(10, Math.ceil(Math.log10(Math.max(...targets.map((t) => t.rps), 10))));
  const ry = (v: number) => bottom - ((bottom - top - 20) * (Math.log10(Math.max(v, rpsLo)) - Math.log10(rpsLo))) / (Math.log10(rpsHi) - Math.log10(rpsLo));
  out.push(`<text x="${lx}" y="${top - 10}" font-weight="600">Throughput (requests/s, log scale, higher is better)</text>`);
  for (let v = rpsLo; v <= rpsHi; v *= 10) {
    out.push(`<line x1="${lx}" y1="${ry(v)}" x2="${lx + lw}" y2="${ry(v)}" stroke="#eee"/>`);
    out.push(`<text x="${lx - 4}" y="${ry(v) + 4}" text-anchor="end" fill="#777">${fmt(v)}</text>`);
  }
  out.push(`<line x1="${lx}" y1="${bottom}" x2="${lx + lw}" y2="${bottom}" stroke="#999"/>`);
  const bw = lw / targets.length;
  targets.forEach((t, i) => {
    const yy = ry(t.rps);
    const x = lx + i * bw + bw * 0.15;
    out.push(`<rect x="${x}" y="${yy}" width="${bw * 0.7}" height="${bottom - yy}" fill="${COLORS[i % COLORS.length]}"/>`);
    out.push(`<text x="${x + bw * 0.35}" y="${yy - 5}" text-anchor="middle">${fmt(t.rps)}</text>`);
    out.push(`<text x="${x + bw * 0.35}" y="${bottom + 16}" text-anchor="middle">${esc(t.name)}</text>`);
  });

  // Right: latency p50/p95/p99 per target, log scale.
  const rx = 520;
  const rw = 400;
  const lats = targets.flatMap((t) => [t.p50, t.p95, t.p99]).filter((v) => v > 0);
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...lats, 1))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...lats, 10))));
  const y = (v: number) => bottom - ((bottom - top - 20) * (Math.log10(Math.max(v, lo)) - Math.log10(lo))) / (Math.log10(hi) - Math.log10(lo));
  out.push(`<text x="${rx}" y="${top - 10}" font-weight="600">Latency (ms, log scale, lower is better): p50 / p95 / p99</text>`);
  for (let v = lo; v <= hi; v *= 10) {
    out.push(`<line x1="${rx}" y1="${y(v)}" x2="${rx + rw}" y2="${y(v)}" stroke="#eee"/>`);
    out.push(`<text x="${rx - 4}" y="${y(v) + 4}" text-anchor="end" fill="#777">${fmt(v)}</text>`);
  }
  const gw = rw / targets.length;
  targets.forEach((t, i) => {
    [t.p50, t.p95, t.p99].forEach((v, j) => {
      const x = rx + i * gw + gw * 0.1 + j * gw * 0.27;
      const yy = y(v);
      out.push(`<rect x="${x}" y="${yy}" width="${gw * 0.25}" height="${bottom - yy}" fill="${COLORS[i % COLORS.length]}" fill-opacity="${[0.45, 0.7, 1][j]}"/>`);
      out.push(`<text x="${x + gw * 0.125}" y="${yy - 4}" text-anchor="middle" font-size="10">${fmt(v)}</text>`);
    });
    out.push(`<text x="${rx + i * gw + gw * 0.5}" y="${bottom + 16}" text-anchor="middle">${esc(t.name)}</text>`);
  });
  out.push(`<line x1="${rx}" y1="${bottom}" x2="${rx + rw}" y2="${bottom}" stroke="#999"/>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

export interface RealtimePoint { target: string; subscribers: number; achieved: number; p99: number }

/**
 * The realtime fan-out chart: writes/s PocketBase achieved (left) and write-to-event p99 (right, log
 * scale) against the number of subscribers, one line per target.
 */
export function realtimeChartSvg(title: string, subtitle: string, points: RealtimePoint[]): string {
  const W = 960;
  const H = 420;
  const top = 80;
  const bottom = 340;
  const targets = [...new Set(points.map((p) => p.target))];
  const sizes = [...new Set(points.map((p) => p.subscribers))].sort((a, b) => a - b);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="20" y="28" font-size="17" font-weight="600">${esc(title)}</text>`);
  out.push(`<text x="20" y="48" fill="#555">${esc(subtitle)}</text>`);
  const panel = (x0: number, w: number, label: string, value: (p: RealtimePoint) => number, log: boolean) => {
    const vals = points.map(value).filter((v) => v > 0);
    const lo = log ? Math.pow(10, Math.floor(Math.log10(Math.min(...vals, 1)))) : 0;
    const hi = log ? Math.pow(10, Math.ceil(Math.log10(Math.max(...vals, 10)))) : Math.ceil(Math.max(...vals, 1) / 5) * 5;
    const y = (v: number) => (log
      ? bottom - ((bottom - top - 20) * (Math.log10(Math.max(v, lo)) - Math.log10(lo))) / (Math.log10(hi) - Math.log10(lo))
      : bottom - ((bottom - top - 20) * v) / hi);
    const x = (s: number) => x0 + 20 + ((w - 40) * sizes.indexOf(s)) / Math.max(1, sizes.length - 1);
    out.push(`<text x="${x0}" y="${top - 10}" font-weight="600">${esc(label)}</text>`);
    const ticks = log ? Array.from({ length: Math.round(Math.log10(hi / lo)) + 1 }, (_, i) => lo * Math.pow(10, i)) : [0, hi / 4, hi / 2, (3 * hi) / 4, hi];
    for (const v of ticks) {
      out.push(`<line x1="${x0}" y1="${y(v)}" x2="${x0 + w}" y2="${y(v)}" stroke="#eee"/>`);
      out.push(`<text x="${x0 - 4}" y="${y(v) + 4}" text-anchor="end" fill="#777">${fmt(v)}</text>`);
    }
    out.push(`<line x1="${x0}" y1="${bottom}" x2="${x0 + w}" y2="${bottom}" stroke="#999"/>`);
    for (const s of sizes) out.push(`<text x="${x(s)}" y="${bottom + 16}" text-anchor="middle">${s.toLocaleString('en-US')}</text>`);
    out.push(`<text x="${x0 + w / 2}" y="${bottom + 34}" text-anchor="middle" fill="#555">subscribers</text>`);
    targets.forEach((t, i) => {
      const line = points.filter((p) => p.target === t).sort((a, b) => a.subscribers - b.subscribers);
      const color = COLORS[(i + 1) % COLORS.length];
      out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${line.map((p) => `${x(p.subscribers)},${y(value(p))}`).join(' ')}"/>`);
      for (const p of line) {
        out.push(`<circle cx="${x(p.subscribers)}" cy="${y(value(p))}" r="3" fill="${color}"/>`);
        out.push(`<text x="${x(p.subscribers)}" y="${y(value(p)) - 7}" text-anchor="middle" font-size="10">${fmt(value(p))}</text>`);
      }
      out.push(`<rect x="${x0 + 10}" y="${top + 4 + i * 16}" width="10" height="10" fill="${color}"/><text x="${x0 + 26}" y="${top + 13 + i * 16}">${esc(t)}</text>`);
    });
  };
  panel(60, 380, 'Writes/s PocketBase achieved (20 asked, higher is better)', (p) => p.achieved, false);
  panel(540, 380, 'Write-to-event p99 (ms, log scale, lower is better)', (p) => p.p99, true);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
