import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { sendFault } from './faults.js';

/**
 * The dashboard's static files (the Vite build of web/, written to dist/dashboard by
 * `npm run build`) at /dashboard. No auth: the files hold no data, and every API call the
 * page makes carries the user's token.
 *
 * The files are read once at start into a map keyed by URL path, so only files that exist in
 * the build are ever served (no path from the URL reaches the file system: no traversal).
 * Text files are gzipped once at load. Unknown paths under /dashboard answer index.html (the
 * page's own router shows the view), except under /dashboard/assets/ (a missing asset is 404).
 */
export const DASHBOARD_PREFIX = '/dashboard';

/** dist/src/http/dashboard.routes.js → dist/dashboard */
const DEFAULT_DIR = fileURLToPath(new URL('../../dashboard/', import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json',
  '.woff2': 'font/woff2',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.css', '.svg', '.json', '.txt', '.map']);

interface StaticFile {
  type: string;
  body: Buffer;
  gzip: Buffer | null;
  /** Hashed file names under assets/ never change: cache them for a year; index.html never. */
  immutable: boolean;
}

function walk(dir: string, out: string[]): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

/** Every file of the build, keyed by its URL path below the prefix ("/index.html", "/assets/x.js"). */
export function loadDashboardFiles(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  if (!existsSync(dir)) return files;
  for (const path of walk(dir, [])) {
    const ext = extname(path).toLowerCase();
    const url = '/' + relative(dir, path).split(sep).join('/');
    const body = readFileSync(path);
    const gzip = COMPRESSIBLE.has(ext) && body.length > 512 ? gzipSync(body, { level: 9 }) : null;
    files.set(url, { type: CONTENT_TYPES[ext] ?? 'application/octet-stream', body, gzip, immutable: url.startsWith('/assets/') });
  }
  return files;
}

function acceptsGzip(req: FastifyRequest): boolean {
  const ae = req.headers['accept-encoding'];
  return typeof ae === 'string' && /\bgzip\b/i.test(ae);
}

function send(req: FastifyRequest, reply: FastifyReply, f: StaticFile): FastifyReply {
  reply.header('content-type', f.type);
  reply.header('cache-control', f.immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
  reply.header('x-content-type-options', 'nosniff');
  reply.header('vary', 'Accept-Encoding');
  if (f.type.startsWith('text/html')) {
    // The page talks to its own origin only.
    reply.header('content-security-policy', "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'");
  }
  if (f.gzip && acceptsGzip(req)) return reply.header('content-encoding', 'gzip').send(f.gzip);
  return reply.send(f.body);
}

/** Registers GET (and HEAD) /dashboard and /dashboard/* at the root of `app`. */
export async function dashboardRoutes(app: FastifyInstance, opts: { dir?: string } = {}): Promise<void> {
  const files = loadDashboardFiles(opts.dir ?? DEFAULT_DIR);
  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const index = files.get('/index.html');
    if (!index) return sendFault(reply, 404, 'The dashboard is not built on this server (run npm run build).');
    const raw = (req.params as { '*'?: string })['*'] ?? '';
    const path = '/' + raw.split('?')[0];
    const f = files.get(path);
    if (f) return send(req, reply, f);
    if (path.startsWith('/assets/')) return sendFault(reply, 404, 'The resource could not be found.');
    return send(req, reply, index);
  };
  app.get(DASHBOARD_PREFIX, handler);
  app.get(`${DASHBOARD_PREFIX}/*`, handler);
}
