/**
 * A loopback TCP relay that delays every byte the server sends by a fixed time, so a round
 * trip (a ping) takes a known, measurable minimum. Order is kept: each chunk is written after
 * the same delay, in the order it arrived; the server's close is passed on after it too.
 */
import { connect, createServer, type Socket } from 'node:net';

export interface DelayRelay {
  readonly host: string;
  readonly port: number;
  /** Destroys every socket and stops listening. */
  close(): Promise<void>;
}

/** Starts a relay on a free loopback port, forwarding to `targetHost:targetPort`. */
export async function startDelayRelay(targetHost: string, targetPort: number, delayMs: number): Promise<DelayRelay> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(targetPort, targetHost);
    sockets.add(client);
    sockets.add(upstream);
    const later = (fn: () => void) => setTimeout(fn, delayMs);
    client.on('data', (chunk) => upstream.write(chunk));
    client.on('end', () => upstream.end());
    upstream.on('data', (chunk) => later(() => !client.destroyed && client.write(chunk)));
    upstream.on('end', () => later(() => client.end()));
    // Errors just end the pair; the relay must never crash the test.
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => later(() => client.destroy()));
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('delay relay: no address');
  return {
    host: '127.0.0.1',
    port: address.port,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A loopback port nothing listens on (bound, then released). */
export function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
