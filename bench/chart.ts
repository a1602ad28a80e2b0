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
