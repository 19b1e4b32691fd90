/**
 * A loopback TCP relay with a gate on NEW connections, to make a connect slow for exactly as
 * long as a test wants: while `hold()` is in force, a client the relay accepts is left waiting
 * (no upstream connection yet, so no server greeting: mysql2's connect stays pending); `open()`
 * connects every held client upstream and forwards from then on. Pairs already forwarding are
 * never affected, so the pool's existing connections keep working meanwhile.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface GateRelay {
  readonly host: string;
  readonly port: number;
  /** Clients accepted, in order (held or forwarded). */
  readonly accepted: number;
  /** Clients accepted while held and not yet let through. */
  readonly held: number;
  /** Holds new connections until `open()`. */
  hold(): void;
  /** Lets held connections through, and forwards new ones at once. */
  open(): void;
  /** Destroys every socket and stops listening. */
  close(): Promise<void>;
}

/** Starts a relay on a free loopback port, forwarding to `targetHost:targetPort`; open at first. */
export async function startGateRelay(targetHost: string, targetPort: number): Promise<GateRelay> {
  const sockets = new Set<Socket>();
  const waiting: Socket[] = [];
  let holding = false;
  let accepted = 0;
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    // Errors (ECONNRESET, EPIPE) just end the pair; the relay must never crash the test.
    socket.on('error', () => undefined);
  };
  const forward = (client: Socket) => {
    if (client.destroyed) return;
    const upstream = connect(targetPort, targetHost);
    track(upstream);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
    client.resume();
  };
  const server: Server = createServer((client) => {
    accepted++;
    track(client);
    if (holding) {
      client.pause();
      waiting.push(client);
    } else {
      forward(client);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('gate relay: no address');
  return {
    host: '127.0.0.1',
    port: address.port,
    get accepted() {
      return accepted;
    },
    get held() {
      return waiting.filter((s) => !s.destroyed).length;
    },
    hold() {
      holding = true;
    },
    open() {
      holding = false;
      for (const client of waiting.splice(0)) forward(client);
    },
    async close() {
      holding = false;
      waiting.length = 0;
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
