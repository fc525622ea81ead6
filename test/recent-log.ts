import type { Logger } from '../src/lib/logger.js';

/**
 * A Logger that keeps Lifeboat's last lines (every level) for a test's failure message: CI
 * prints only the tail of a run, so what a hung step was doing must be in the error itself.
 */
export class RecentLog implements Logger {
  private readonly lines: string[] = [];

  constructor(private readonly keep = 25) {}

  info(o: object | string, msg?: string): void {
    this.add('info', o, msg);
  }
  warn(o: object | string, msg?: string): void {
    this.add('warn', o, msg);
  }
  error(o: object | string, msg?: string): void {
    this.add('error', o, msg);
  }
  debug(o: object | string, msg?: string): void {
    this.add('debug', o, msg);
  }
  child(): Logger {
    return this;
  }

  tail(): string {
    return this.lines.join('\n');
  }

  private add(level: string, o: object | string, msg?: string): void {
    const what = typeof o === 'string' ? o : `${msg ?? ''} ${JSON.stringify(o)}`;
    this.lines.push(`${new Date().toISOString().slice(11, 19)} ${level} ${what.slice(0, 400)}`);
    if (this.lines.length > this.keep) this.lines.shift();
  }
}
