/**
 * A loopback TCP relay in front of a server, to make a network path go silent: each client
 * the relay accepts gets its own upstream connection, piped both ways. `blackhole()` stops
 * every existing pair forwarding, in both directions, WITHOUT closing either socket: bytes
 * sent are acknowledged by the kernel and then go nowhere, and nothing ever comes back, as
 * when a NAT, firewall or load balancer drops a flow without a RST. Connections made after it
 * are forwarded normally.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface RelayPair {
  /** The socket the relay accepted from the client. */
  readonly client: Socket;
  /** The relay's own connection to the server. */
  readonly upstream: Socket;
  /** Whether `blackhole()` stopped this pair. */
  readonly blackholed: boolean;
  /**
   * Resolves true once the client has closed its end of this pair, false if it has not within
   * `timeoutMs`. On a blackholed pair the relay's side is paused and would never notice, so
   * this starts reading it again, discarding whatever arrives: nothing is forwarded.
   */
  clientClosed(timeoutMs: number): Promise<boolean>;
}

export interface Relay {
  readonly host: string;
  readonly port: number;
  /** Every pair the relay has accepted, oldest first. */
  readonly pairs: readonly RelayPair[];
  /** Stops every existing pair forwarding, both ways, leaving all sockets open. */
  blackhole(): void;
  /** Destroys every socket and stops listening. */
  close(): Promise<void>;
}

interface MutablePair extends RelayPair {
  blackholed: boolean;
  clientEnded: boolean;
}

/** Starts a relay on a free loopback port, forwarding to `targetHost:targetPort`. */
export async function startRelay(targetHost: string, targetPort: number): Promise<Relay> {
  const pairs: MutablePair[] = [];
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, targetHost);
    const pair: MutablePair = {
      client,
      upstream,
      blackholed: false,
      clientEnded: false,
      clientClosed: (timeoutMs) => waitForClientClose(pair, timeoutMs),
    };
    pairs.push(pair);
    const markEnded = () => {
      pair.clientEnded = true;
    };
    client.once('end', markEnded);
    client.once('close', markEnded);
    // Errors (ECONNRESET, EPIPE) just end the pair; the relay must never crash the test.
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('relay: no address');

  return {
    host: '127.0.0.1',
    port: address.port,
    pairs,
    blackhole() {
      for (const pair of pairs) {
        if (pair.blackholed) continue;
        pair.blackholed = true;
        pair.client.unpipe(pair.upstream);
        pair.upstream.unpipe(pair.client);
        pair.client.pause();
        pair.upstream.pause();
      }
    },
    async close() {
      for (const pair of pairs) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function waitForClientClose(pair: MutablePair, timeoutMs: number): Promise<boolean> {
  if (pair.clientEnded || pair.client.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (closed: boolean) => {
      clearTimeout(timer);
      pair.client.off('end', onEnd);
      pair.client.off('close', onEnd);
      resolve(closed);
    };
    const onEnd = () => done(true);
    const timer = setTimeout(() => done(false), timeoutMs);
    pair.client.on('end', onEnd);
    pair.client.on('close', onEnd);
    if (pair.blackholed) {
      pair.client.on('data', () => {}); // discard: a blackholed pair forwards nothing
      pair.client.resume();
    }
  });
}
