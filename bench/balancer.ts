// A simple TCP load balancer: each client connection goes to the next backend in turn (round robin), as
// a layer-4 balancer in front of several sidecars would. `node --import tsx bench/balancer.ts <port> <port>...`
// prints its own port.
import { connect, createServer, type AddressInfo } from 'node:net';

const backends = process.argv.slice(2).map(Number);
let next = 0;
const server = createServer((client) => {
  const port = backends[next++ % backends.length];
  const upstream = connect({ host: '127.0.0.1', port });
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  client.pipe(upstream).pipe(client);
  const close = () => { client.destroy(); upstream.destroy(); };
  client.on('error', close);
  upstream.on('error', close);
  client.on('close', close);
  upstream.on('close', close);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as AddressInfo).port}\n`));
