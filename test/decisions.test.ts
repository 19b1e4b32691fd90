// The pool's pure decisions, with an injected clock and randomness: no server, no sleeps.
import t from 'tap';
import { DEFAULTS } from '../lib/config.js';
import {
  borrowVerdict,
  connectBackoffMs,
  derivedConnWaitAgeMs,
  effectiveConnWaitAgeMs,
  housekeepingIntervalMs,
  idleAction,
  jitteredMaxAgeMs,
  statementVerdict,
} from '../lib/decisions.js';

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

// 0 means "no age limit", so a tiny maxAge must never be floored to it.
t.test('jitteredMaxAgeMs: any maxAge above 0 gives a limit of at least 1 ms', async (t) => {
  t.equal(jitteredMaxAgeMs(1, 0.999_999), 1, 'maxAge 1, most jitter');
  t.equal(jitteredMaxAgeMs(1, 0.5), 1);
  t.equal(jitteredMaxAgeMs(1, 0), 1);
  t.equal(jitteredMaxAgeMs(0.5, 0.3), 1, 'a fraction of a millisecond is still a limit');
  for (const maxAgeMs of [0.001, 0.5, 1, 2, 3, 39, 40, 41, 1_000]) {
    for (const random of [0, 0.25, 0.5, 0.75, 0.999_999]) {
      const limit = jitteredMaxAgeMs(maxAgeMs, random);
      t.ok(limit >= 1, `maxAge ${maxAgeMs}, random ${random}: limit ${limit} >= 1`);
      t.ok(limit <= Math.max(1, maxAgeMs), `maxAge ${maxAgeMs}, random ${random}: limit ${limit} not above maxAge`);
      t.ok(Number.isInteger(limit), `maxAge ${maxAgeMs}, random ${random}: whole ms`);
    }
  }
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

t.test('suspicion: a connection last used before a detected death is pinged, however recent', async (t) => {
  const c = conn(T0, T0 + 5_000);
  t.equal(borrowVerdict(c, false, T0 + 5_100, 30_000, 0), 'use', 'no suspicion');
  t.equal(borrowVerdict(c, false, T0 + 5_100, 30_000, T0 + 5_050), 'ping', 'used before the detection');
  t.equal(borrowVerdict(c, false, T0 + 5_100, 30_000, T0 + 4_000), 'use', 'used after the detection');
  t.equal(statementVerdict(c, false, T0 + 5_100, 30_000, T0 + 5_050), 'ping', 'inside withConnection too');
  t.equal(statementVerdict(conn(T0, T0, 1_000), false, T0 + 999_999, 60_000_000), 'use', 'a lent connection is never retired by age');
});

t.test('idleAction: age first, then idle timeout above min, then keep-alive', async (t) => {
  const c = conn(T0, T0 + 1_000, 60_000);
  t.equal(idleAction(c, T0 + 60_001, 10_000, 1_000, false), 'maxAge', 'age applies even at min: a replacement is made');
  t.equal(idleAction(c, T0 + 11_001, 10_000, 1_000, true), 'idleTimeout');
  t.equal(idleAction(c, T0 + 11_001, 10_000, 1_000, false), 'keepAlive', 'at min: kept, and kept alive');
  t.equal(idleAction(c, T0 + 11_001, 10_000, 0, false), 'keep', 'at min without keep-alive');
  t.equal(idleAction(c, T0 + 1_999, 10_000, 1_000, true), 'keep', 'not idle long enough for anything');
  t.equal(idleAction(c, T0 + 2_000, 10_000, 1_000, true), 'keepAlive');
  t.equal(idleAction(c, T0 + 50_000, 0, 0, true), 'keep', 'idleTimeout 0 keeps idle connections');
});

t.test('housekeepingIntervalMs: a quarter of the shortest setting, 50 ms to 30 s, none when all off', async (t) => {
  t.equal(housekeepingIntervalMs(600_000, 0, 1_800_000), 30_000);
  t.equal(housekeepingIntervalMs(400, 0, 0), 100);
  t.equal(housekeepingIntervalMs(100, 0, 0), 50);
  t.equal(housekeepingIntervalMs(600_000, 20_000, 0), 5_000);
  t.equal(housekeepingIntervalMs(0, 0, 0), undefined);
});
