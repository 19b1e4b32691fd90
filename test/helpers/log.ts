/** A pino logger that keeps every line it writes, parsed, for assertions. */
import { pino, type Logger, type LoggerOptions } from 'pino';

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export interface CapturedLog {
  logger: Logger;
  lines: LogLine[];
  /** Lines whose message is `msg`. */
  find(msg: string): LogLine[];
  /** Every line, as the raw text written. */
  text(): string;
}

/** @param options more pino options (custom serializers, an `errorKey`...), as a user's logger has them */
export function captureLog(level = 'debug', options: LoggerOptions = {}): CapturedLog {
  const raw: string[] = [];
  const lines: LogLine[] = [];
  const logger = pino({ ...options, level }, {
    write(chunk: string) {
      raw.push(chunk);
      lines.push(JSON.parse(chunk) as LogLine);
    },
  });
  return { logger, lines, find: (msg) => lines.filter((l) => l.msg === msg), text: () => raw.join('') };
}
