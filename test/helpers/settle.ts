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
