/**
 * The network path between the pool and the server: a loopback TCP relay that can stall
 * every flow for a while (`freeze`), or silence the flows open now and then reset them
 * (`drop`), as a congested link or a NAT flushing its table would. Each client gets its own
 * upstream connection.
 *
 * Nothing crosses a stalled path: not data, and not a close either. So the relay keeps reading
 * both sides and, while a flow is frozen, queues everything it would pass on (bytes, FIN,
 * a reset) to replay in order when the freeze ends. Pausing the sockets instead would leak
 * closes: a paused socket still reads its peer's FIN and closes.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

/** A freezable relay in front of the server. */
export interface ChaosRelay {
  readonly host: string;
  readonly port: number;
  /** Flows currently open. */
  readonly flows: number;
  /** Every flow, including those opened meanwhile, passes nothing for `ms`, then catches up. */
  freeze(ms: number): Promise<void>;
  /** The flows open now pass nothing for `silentMs`, then both ends are reset (RST). */
  drop(silentMs: number): Promise<void>;
  /** Destroys every flow and stops listening. */
  close(): Promise<void>;
}

interface Flow {
  client: Socket;
  upstream: Socket;
  /** While frozen: what to pass on at the thaw, in order. */
  backlog: Array<() => void> | undefined;
  /** Silenced by a `drop`: everything is discarded until it is reset. */
  doomed: boolean;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Starts a relay on a free loopback port, forwarding to `targetHost:targetPort`. */
export async function startChaosRelay(targetHost: string, targetPort: number): Promise<ChaosRelay> {
  const flows = new Set<Flow>();
  let frozen = 0; // freezes in progress; new flows start frozen while it is above 0

  const pass = (flow: Flow, action: () => void) => {
    if (flow.doomed) return;
    if (flow.backlog) flow.backlog.push(action);
    else action();
  };
  const thaw = (flow: Flow) => {
    const backlog = flow.backlog ?? [];
    flow.backlog = undefined;
    for (const action of backlog) action();
  };

  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, targetHost);
    const flow: Flow = { client, upstream, backlog: frozen > 0 ? [] : undefined, doomed: false };
    flows.add(flow);
    const closeBoth = () => {
      flows.delete(flow);
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (chunk) => pass(flow, () => upstream.write(chunk)));
    upstream.on('data', (chunk) => pass(flow, () => client.write(chunk)));
    client.on('end', () => pass(flow, () => upstream.end()));
    upstream.on('end', () => pass(flow, () => client.end()));
    // Any error or close ends the whole flow (once it may pass); the relay must never throw.
    for (const socket of [client, upstream]) {
      socket.on('error', () => pass(flow, closeBoth));
      socket.on('close', () => pass(flow, closeBoth));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('chaos relay: no address');

  return {
    host: '127.0.0.1',
    port: address.port,
    get flows() {
      return flows.size;
    },
    async freeze(ms) {
      frozen++;
      for (const flow of flows) flow.backlog ??= [];
      await sleep(ms);
      frozen--;
      if (frozen === 0) for (const flow of [...flows]) thaw(flow);
    },
    async drop(silentMs) {
      const victims = [...flows];
      for (const flow of victims) flow.doomed = true;
      await sleep(silentMs);
      for (const flow of victims) {
        flows.delete(flow);
        flow.client.resetAndDestroy();
        flow.upstream.resetAndDestroy();
      }
    },
    async close() {
      for (const flow of flows) {
        flow.client.destroy();
        flow.upstream.destroy();
      }
      flows.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
