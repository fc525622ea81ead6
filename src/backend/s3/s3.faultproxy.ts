import { once } from 'node:events';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * What the proxy does to one request:
 * - `pass`: forwards it untouched;
 * - `503`: answers 503 SlowDown (S3's throttling answer) without forwarding;
 * - `reset`: drops the connection without an answer;
 * - `truncate`: forwards it, then cuts the answer's body in half and drops the connection (the
 *   headers still promise the whole length), as a broken transfer does;
 * - `slow`: forwards it after `slowMs` (a server that stalls).
 */
export type Fault = 'pass' | '503' | 'reset' | 'truncate' | 'slow';

export interface FaultProxy {
  /** The URL to give the client instead of the server's. */
  endpoint: string;
  /** Requests seen, by the fault applied. */
  counts: Record<Fault, number>;
  close(): Promise<void>;
}

/**
 * A loopback HTTP proxy in front of a test S3 server that injects faults chosen per request
 * by `decide` (method, path with query, and a running request number from 1). Headers pass
 * unchanged (the SigV4 signature covers Host, which stays the proxy's, as the client signed it).
 * Test-only; bounded by the requests the test makes.
 */
export async function startFaultProxy(upstream: string, decide: (method: string, path: string, n: number) => Fault, slowMs = 0): Promise<FaultProxy> {
  const up = new URL(upstream);
  const counts: Record<Fault, number> = { pass: 0, '503': 0, reset: 0, truncate: 0, slow: 0 };
  let n = 0;
  const server: Server = createServer((req, res) => {
    void handle(req, res).catch(() => res.destroy());
  });
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const fault = decide(req.method ?? 'GET', req.url ?? '/', ++n);
    counts[fault]++;
    if (fault === 'reset') return void req.socket.destroy();
    if (fault === '503') {
      const body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>';
      res.writeHead(503, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
      return void res.end(body);
    }
    if (fault === 'slow') await new Promise((r) => setTimeout(r, slowMs));
    const fwd = request({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers });
    fwd.end(Buffer.concat(chunks));
    const [answer] = (await once(fwd, 'response')) as [IncomingMessage];
    const body: Buffer[] = [];
    for await (const c of answer) body.push(c as Buffer);
    const all = Buffer.concat(body);
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    if (fault === 'truncate' && all.length > 1) {
      res.write(all.subarray(0, all.length >> 1));
      await new Promise((r) => setImmediate(r));
      return void res.socket?.destroy();
    }
    res.end(all);
  }
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    counts,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
