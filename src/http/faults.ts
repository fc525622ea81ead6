import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, type ErrorKind } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';

/**
 * THE error → fault table. Every error a route throws ends here and leaves as an OpenStack
 * fault `{"<faultName>": {"code": N, "message": "..."}}`; 401 uses keystonemiddleware's body
 * and header instead. Unknown errors become a generic 500 that names only the request id.
 */
const KIND_STATUS: Record<ErrorKind, number> = {
  validation: 400,
  'invalid-state': 400,
  'not-found': 404,
  unauthenticated: 401,
  forbidden: 403,
  conflict: 409,
  'too-large': 413,
  'unsupported-media': 415,
  unavailable: 503,
  integrity: 500,
  internal: 500,
};

const FAULT_NAME: Record<number, string> = {
  400: 'badRequest',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'itemNotFound',
  405: 'badMethod',
  409: 'conflictingRequest',
  413: 'overLimit',
  415: 'badMediaType',
  501: 'notImplemented',
  503: 'serviceUnavailable',
};

export function faultBody(status: number, message: string): Record<string, unknown> {
  const name = FAULT_NAME[status] ?? 'Error';
  const inner: Record<string, unknown> = { code: status, message };
  return { [name]: inner };
}

export const KEYSTONE_401_MESSAGE = 'The request you have made requires authentication.';

/** Maps Fastify's own errors (parser, body limit, validation) to status + legacy message. */
function fromFastifyError(e: FastifyError): { status: number; message: string } | null {
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, message: 'Request is too large.' };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, message: 'Unsupported Content-Type' };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { status: 400, message: 'Malformed request body' };
    case 'FST_ERR_VALIDATION':
      return { status: 400, message: e.message };
    default:
      break;
  }
  if (e instanceof SyntaxError) return { status: 400, message: 'Malformed request body' };
  const sc = (e as { statusCode?: number }).statusCode;
  if (typeof sc === 'number' && sc >= 400 && sc < 500) return { status: sc, message: e.message };
  return null;
}

export function sendFault(reply: FastifyReply, status: number, message: string, keystoneUri?: string): FastifyReply {
  if (status === 401) {
    if (keystoneUri) reply.header('www-authenticate', `Keystone uri="${keystoneUri}"`);
    return reply
      .code(401)
      .type('application/json')
      .send({ error: { code: 401, title: 'Unauthorized', message } });
  }
  return reply.code(status).type('application/json').send(faultBody(status, message));
}

export interface FaultOptions {
  log: Logger;
  /** The Keystone URI for WWW-Authenticate on 401s. */
  keystoneUri: string;
}

/** Installs the error and not-found handlers that turn everything into faults. */
export function installFaultHandling(app: FastifyInstance, opts: FaultOptions): void {
  app.setErrorHandler((err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof AppError) {
      const status = KIND_STATUS[err.kind];
      if (status >= 500) {
        opts.log.error({ reqId: req.id, err: { message: err.message, kind: err.kind } }, 'request failed');
        const msg = err.kind === 'unavailable' ? err.message : `The server has either erred or is incapable of performing the requested operation. (Request-ID: ${req.id})`;
        return sendFault(reply, status, msg);
      }
      return sendFault(reply, status, err.kind === 'unauthenticated' ? KEYSTONE_401_MESSAGE : err.message, opts.keystoneUri);
    }
    const mapped = err && typeof err === 'object' ? fromFastifyError(err as FastifyError) : null;
    if (mapped) return sendFault(reply, mapped.status, mapped.message, opts.keystoneUri);
    opts.log.error({ reqId: req.id, err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) }, 'unhandled error');
    return sendFault(reply, 500, `The server has either erred or is incapable of performing the requested operation. (Request-ID: ${req.id})`);
  });
  app.setNotFoundHandler((req, reply) => {
    sendFault(reply, 404, `The resource could not be found.`);
  });
}
