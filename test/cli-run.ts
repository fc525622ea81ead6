import { readFileSync } from 'node:fs';
import { runClient } from '../src/cli/commands.js';

/** One `lifeboat` client command in-process, with `env` as its environment: exit code and output. */
export async function runCli(env: Record<string, string>, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runClient(args, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s), isTTY: false },
    env,
    fetch: globalThis.fetch.bind(globalThis),
    readFile: (p) => readFileSync(p, 'utf8'),
  });
  return { code, stdout, stderr };
}
