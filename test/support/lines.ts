import type { Readable } from 'node:stream';

export interface LogLine {
  level: string;
  msg: string;
  [k: string]: unknown;
}

/** Calls `onLine` for every complete non-empty line of `stream`, without its line end. */
export function onLines(stream: Readable, onLine: (line: string) => void): void {
  let rest = '';
  stream.setEncoding('utf8').on('data', (chunk: string) => {
    rest += chunk;
    const parts = rest.split('\n');
    rest = parts.pop()!;
    for (const p of parts) if (p.trim() !== '') onLine(p.replace(/\r$/, ''));
  });
}

/** Calls `onLine` for every JSON log line the daemon writes; a line that is not JSON arrives as `{ level: 'raw' }`. */
export function onJsonLines(stream: Readable, onLine: (line: LogLine) => void): void {
  onLines(stream, (p) => {
    let line: LogLine;
    try {
      line = JSON.parse(p) as LogLine;
    } catch {
      line = { level: 'raw', msg: p };
    }
    onLine(line);
  });
}
