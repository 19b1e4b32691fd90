// The pool's pure decisions, with an injected clock and randomness: no server, no sleeps.
import t from 'tap';
import { DEFAULTS } from '../lib/config.js';
import { borrowVerdict, connectBackoffMs, derivedConnWaitAgeMs, effectiveConnWaitAgeMs, jitteredMaxAgeMs } from '../lib/decisions.js';

const T0 = 1_700_000_000_000;
const conn = (createdAt: number, lastAccessAt: number, maxAgeMs = 60_000) => ({ createdAt, lastAccessAt, maxAgeMs });

t.test('borrowVerdict: order is closed, age, idle, use', async (t) => {
  t.equal(borrowVerdict(conn(T0, T0), true, T0 + 999_999, 1_000), 'closed', 'a known-closed connection is dropped before anything else');
  t.equal(borrowVerdict(conn(T0, T0 + 60_000), false, T0 + 60_001, 1_000), 'maxAge', 'age wins over recent use');
  t.equal(borrowVerdict(conn(T0, T0), false, T0 + 60_000, 100_000), 'use', 'exactly maxAge is not yet too old');
  t.equal(borrowVerdict(conn(T0, T0), false, T0 + 1_001, 1_000), 'ping', 'idle past connWaitAge');
  t.equal(borrowVerdict(conn(T0, T0), false, T0 + 1_000, 1_000), 'use', 'idle exactly connWaitAge is still fresh');
  t.equal(borrowVerdict(conn(T0, T0 + 5_000), false, T0 + 5_500, 1_000), 'use', 'recently returned');
});

t.test('borrowVerdict: edge settings', async (t) => {
  t.equal(borrowVerdict(conn(T0, T0, 0), false, T0 + 10 ** 9, 10 ** 10), 'use', 'maxAge 0 means no age limit');
  t.equal(borrowVerdict(conn(T0, T0), false, T0 + 1, 0), 'ping', 'connWaitAge 0 pings after any idle time');
  t.equal(borrowVerdict(conn(T0, T0), false, T0, 0), 'use', 'connWaitAge 0, zero idle');
  t.equal(borrowVerdict(conn(T0, T0), false, T0, undefined), 'ping', 'threshold not known yet: ping');
  t.equal(borrowVerdict(conn(T0, T0 + 10_000), false, T0 + 5_000, 1_000), 'ping', 'clock went backwards: idle time unknown, ping');
});

t.test('derivedConnWaitAgeMs: half of wait_timeout, capped', async (t) => {
  t.equal(derivedConnWaitAgeMs(1), 500);
  t.equal(derivedConnWaitAgeMs(2), 1_000);
  t.equal(derivedConnWaitAgeMs(60), 30_000);
  t.equal(derivedConnWaitAgeMs(28_800), DEFAULTS.connWaitAgeCap, 'MariaDB default 8 h: the cap');
});

t.test('effectiveConnWaitAgeMs: explicit values at or above wait_timeout are clamped', async (t) => {
  t.same(effectiveConnWaitAgeMs(undefined, 10), { ms: 5_000, clamped: false });
  t.same(effectiveConnWaitAgeMs(9_999, 10), { ms: 9_999, clamped: false });
  t.same(effectiveConnWaitAgeMs(10_000, 10), { ms: 5_000, clamped: true });
  t.same(effectiveConnWaitAgeMs(0, 10), { ms: 0, clamped: false });
});

t.test('jitteredMaxAgeMs: shortened by at most 2.5 %', async (t) => {
  t.equal(jitteredMaxAgeMs(100_000, 0), 100_000);
  t.equal(jitteredMaxAgeMs(100_000, 0.5), 98_750);
  t.ok(jitteredMaxAgeMs(100_000, 0.999_999) > 97_499);
  t.equal(jitteredMaxAgeMs(0, 0.7), 0, 'no limit stays no limit');
  t.not(jitteredMaxAgeMs(1_800_000, 0.1), jitteredMaxAgeMs(1_800_000, 0.9), 'connections made together expire apart');
});

t.test('connectBackoffMs: none at first, doubling, capped, jittered', async (t) => {
  t.equal(connectBackoffMs(0, 0.5), 0);
  t.equal(connectBackoffMs(1, 0), DEFAULTS.connectBackoffInitial / 2);
  t.equal(connectBackoffMs(1, 0.999_999), DEFAULTS.connectBackoffInitial - 1);
  t.equal(connectBackoffMs(2, 0), DEFAULTS.connectBackoffInitial);
  t.equal(connectBackoffMs(3, 0), DEFAULTS.connectBackoffInitial * 2);
  t.equal(connectBackoffMs(50, 0), DEFAULTS.connectBackoffMax / 2);
  t.ok(connectBackoffMs(1_000, 0.999_999) < DEFAULTS.connectBackoffMax, 'never beyond the cap');
});
