// Loopback helpers for tests: free ports.
import { createServer } from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

import { connect, type Server, type Socket } from 'node:net';

/**
 * A TCP forwarder between the sidecar and PocketBase, for cutting the sidecar's upstream connections
 * (fault injection at the network level, nothing mocked).
 */
export class TcpCutter {
  private server: Server | null = null;
  private sockets = new Set<Socket>();
  private refusing = false;
  port = 0;

  constructor(private readonly target: { host: string; port: () => number }) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = createServer((client) => {
      if (this.refusing) return client.destroy();
      const upstream = connect(this.target.port(), this.target.host);
      this.sockets.add(client).add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((res) => this.server!.listen(0, '127.0.0.1', res));
    this.port = (this.server.address() as { port: number }).port;
  }

  /** Destroys every open connection (the next request reconnects). */
  cut(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  /** Cuts and refuses new connections until resume(). */
  block(): void {
    this.refusing = true;
    this.cut();
  }

  resume(): void {
    this.refusing = false;
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((res) => (this.server ? this.server.close(() => res()) : res()));
  }
}
