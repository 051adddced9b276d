import type { LogLevel } from './config';

/** The agent writes only to stderr, never to the app's stdout, and never throws from a log call. */
export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export function createLogger(level: LogLevel, write: (line: string) => void = (line) => process.stderr.write(line)): Logger {
  const emit = (at: Exclude<LogLevel, 'silent'>, message: string): void => {
    if (RANK[at] < RANK[level]) return;
    try {
      write(`[span-profiling] ${at}: ${message}\n`);
    } catch {
      // stderr closed: nothing sensible left to do.
    }
  };
  return {
    debug: (m) => emit('debug', m),
    info: (m) => emit('info', m),
    warn: (m) => emit('warn', m),
    error: (m) => emit('error', m),
  };
}

/** One line per log entry: the first line of an error's message. */
export function describeError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n', 1)[0]!.trim();
}
