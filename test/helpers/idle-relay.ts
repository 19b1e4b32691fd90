/**
 * A loopback TCP relay that behaves like a middlebox with an idle timeout (a NAT, a stateful
 * firewall, a cloud load balancer): a pair of connections that carried no byte, either way,
 * for longer than `idleDropMs` is forgotten. From then on it is blackholed: nothing is
 * forwarded in either direction, and neither socket is closed, so neither end is told (the
 * worst case: some middleboxes, e.g. AWS NLB, answer later packets with a RST instead).
 * A pair that keeps carrying bytes (a keep-alive ping) is never dropped. New connections are
 * forwarded normally.
 *
 * Like test/helpers/relay.ts, but the drop is decided per pair by its idleness, not by a call.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface IdleRelayPair {
  /** The socket the relay accepted from the client. */
  readonly client: Socket;
  /** The relay's own connection to the server. */
  readonly upstream: Socket;
  /** When a byte last crossed the pair, either way (ms since the epoch). */
  readonly lastActivityAt: number;
  /** When the pair was dropped for idleness (ms since the epoch); undefined while forwarded. */
  readonly droppedAt: number | undefined;
  /** Bytes forwarded, client to server and server to client. */
  readonly bytesUp: number;
  readonly bytesDown: number;
}

export interface IdleRelay {
  readonly host: string;
  readonly port: number;
  readonly idleDropMs: number;
  /** Every pair the relay has accepted, oldest first. */
  readonly pairs: readonly IdleRelayPair[];
  /** Destroys every socket and stops listening. */
  close(): Promise<void>;
}

interface MutablePair {
  client: Socket;
  upstream: Socket;
  lastActivityAt: number;
  droppedAt: number | undefined;
  bytesUp: number;
  bytesDown: number;
}

/**
 * Starts a relay on a free loopback port, forwarding to `targetHost:targetPort`, that drops
 * any pair idle longer than `idleDropMs` (checked every `idleDropMs / 20`, at least 5 ms).
 */
export async function startIdleRelay(targetHost: string, targetPort: number, idleDropMs: number): Promise<IdleRelay> {
  const pairs: MutablePair[] = [];
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, targetHost);
    const pair: MutablePair = { client, upstream, lastActivityAt: Date.now(), droppedAt: undefined, bytesUp: 0, bytesDown: 0 };
    pairs.push(pair);
    // Forwarded by hand, so a dropped pair can swallow bytes without closing anything.
    client.on('data', (chunk: Buffer) => {
      if (pair.droppedAt !== undefined) return; // blackholed: discarded, never answered
      pair.lastActivityAt = Date.now();
      pair.bytesUp += chunk.length;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (pair.droppedAt !== undefined) return;
      pair.lastActivityAt = Date.now();
      pair.bytesDown += chunk.length;
      client.write(chunk);
    });
    // A close is forwarded while the pair lives; a dropped pair tells neither side anything.
    client.on('end', () => {
      if (pair.droppedAt === undefined) upstream.end();
    });
    upstream.on('end', () => {
      if (pair.droppedAt === undefined) client.end();
    });
    // Errors (ECONNRESET, EPIPE) just end the pair; the relay must never crash the test.
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('idle relay: no address');

  const sweep = setInterval(
    () => {
      const nowMs = Date.now();
      for (const pair of pairs) {
        if (pair.droppedAt === undefined && nowMs - pair.lastActivityAt > idleDropMs) pair.droppedAt = nowMs;
      }
    },
    Math.max(5, Math.floor(idleDropMs / 20)),
  );
  sweep.unref();

  return {
    host: '127.0.0.1',
    port: address.port,
    idleDropMs,
    pairs,
    async close() {
      clearInterval(sweep);
      for (const pair of pairs) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
