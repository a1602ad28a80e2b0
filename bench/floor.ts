// The floor: a bare Node HTTP server that answers each request with a body the sidecar gave for the
// same path (or, for a path it did not capture, one of the same kind), so a replay against it shows
// what Node alone does with these responses on this machine. `node --import tsx bench/floor.ts <capture.json>`
// prints its port.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const captured = JSON.parse(readFileSync(process.argv[2], 'utf8')) as Record<string, [string, number, string][]>;
const byPath = new Map<string, [number, Buffer]>();
const byKind = new Map<string, [number, Buffer][]>();
for (const [kind, list] of Object.entries(captured)) {
  byKind.set(kind, list.map(([, status, body]) => [status, Buffer.from(body)]));
  for (const [path, status, body] of list) byPath.set(`${kind} ${path}`, [status, Buffer.from(body)]);
}
const turn = new Map<string, number>();
const EMPTY: [number, Buffer] = [404, Buffer.from('{"data":{},"message":"Not found.","status":404}')];

const server = createServer((req, res) => {
  const kind = String(req.headers['x-bench-kind'] ?? '');
  req.resume();
  req.on('end', () => {
    let hit = byPath.get(`${kind} ${req.url}`);
    if (!hit) {
      const list = byKind.get(kind) ?? [];
      const i = turn.get(kind) ?? 0;
      turn.set(kind, i + 1);
      hit = list.length ? list[i % list.length] : EMPTY;
    }
    const [status, body] = hit;
    res.writeHead(status, status === 204 ? {} : { 'content-type': 'application/json', 'content-length': body.length });
    res.end(status === 204 ? undefined : body);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as AddressInfo).port}\n`));
