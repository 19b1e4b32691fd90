/**
 * Child-process scenario for leak-warning.test.ts: arms a 60 s leak-warning timer, prints
 * `armed` with the number of ref'ed timers then active, and must exit at once by itself.
 * Usage: node --import=<ts loader> leak-timer.ts
 */
import { pino } from 'pino';
import { watchForLeak } from '../../lib/leak-watch.js';
import { childLoaded } from './child.js';

childLoaded();
watchForLeak(pino({ level: 'silent' }), () => 1, 60_000, undefined);
// getActiveResourcesInfo() lists ref'ed timers only: the ones that keep a process alive.
const refTimers = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
process.stdout.write(`${JSON.stringify({ step: 'armed', refTimers })}\n`);
