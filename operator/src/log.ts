/** Structured JSON logs, one object per line on stdout. */
export type Fields = Record<string, unknown>;

export interface Log {
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  debug(msg: string, fields?: Fields): void;
}

const RANK = { debug: 10, info: 20, warn: 30, error: 40 } as const;
export type Level = keyof typeof RANK;

export function jsonLog(level: Level = 'info', write: (line: string) => void = (l) => process.stdout.write(l)): Log {
  const emit = (at: Level, msg: string, fields?: Fields): void => {
    if (RANK[at] < RANK[level]) return;
    write(`${JSON.stringify({ ts: new Date().toISOString(), level: at, msg, ...fields })}\n`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}

export const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err));
