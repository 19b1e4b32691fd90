/** Small shared test utilities: bounded waits and URLs through a relay. */

/** Settles as `promise` does, or with 'pending' if it has not within `ms`. */
export function within<T>(promise: Promise<T>, ms: number): Promise<{ status: 'fulfilled'; value: T } | { status: 'rejected'; reason: unknown } | { status: 'pending' }> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<{ status: 'pending' }>((resolve) => {
    timer = setTimeout(() => resolve({ status: 'pending' }), ms);
  });
  const settled = promise.then(
    (value) => ({ status: 'fulfilled' as const, value }),
    (reason: unknown) => ({ status: 'rejected' as const, reason }),
  );
  return Promise.race([settled, pending]).finally(() => clearTimeout(timer));
}

/** `serverUrl` with its host and port replaced by the relay's. */
export function throughRelay(serverUrl: string, relay: { host: string; port: number }): string {
  const url = new URL(serverUrl);
  url.hostname = relay.host;
  url.port = String(relay.port);
  return url.toString();
}

/** Resolves once `check()` holds (polled every 10 ms), or rejects after `ms`, naming `what`. */
export async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A `within()` outcome in words, for assertion messages. */
export const describeOutcome = (r: Awaited<ReturnType<typeof within>>): string =>
  r.status === 'rejected' ? `rejected: ${(r.reason as Error).name}: ${(r.reason as Error).message}` : r.status;
