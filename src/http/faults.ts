import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, isEngineFault, RateLimitedError, type ErrorKind } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { redactPaths } from '../lib/redact.js';

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
  'rate-limited': 429,
  unavailable: 503,
  upstream: 502,
  integrity: 500,
  'corrupt-metadata': 500,
  'missing-object': 500,
  internal: 500,
};

const FAULT_NAME: Record<number, string> = {
  400: 'badRequest',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'itemNotFound',
  405: 'badMethod',
  408: 'requestTimeout',
  409: 'conflictingRequest',
  413: 'overLimit',
  414: 'uriTooLong',
  415: 'badMediaType',
  // nova answers rate limiting with an overLimit fault too (429 since Icehouse).
  429: 'overLimit',
  431: 'headersTooLarge',
  501: 'notImplemented',
  502: 'badGateway',
  503: 'serviceUnavailable',
};

export function faultBody(status: number, message: string): Record<string, unknown> {
  const name = FAULT_NAME[status] ?? 'Error';
  const inner: Record<string, unknown> = { code: status, message: redactPaths(message) };
  return { [name]: inner };
}

export const KEYSTONE_401_MESSAGE = 'The request you have made requires authentication.';

/**
 * A request that failed its route schema (openapi.ts, api-schemas.ts), in the words of the
 * command parsers: a body that is not the `{"<key>": {...}}` envelope is the legacy
 * "Incorrect request body format"; a field of the wrong type is `Invalid <path>: <why>`.
 */
function validationMessage(e: FastifyError): string {
  const first = e.validation?.[0];
  if (!first) return e.message;
  const path = first.instancePath.split('/').filter((s) => s !== '');
  if (e.validationContext === 'body') {
    const envelope = path.length === 0 || (path.length === 1 && first.keyword === 'type' && first.params.type === 'object');
    if (envelope) return 'Incorrect request body format';
  }
  const where = path.length > 0 ? path.join('.') : String(e.validationContext ?? 'request');
  return `Invalid ${where}: ${first.message ?? 'not acceptable'}`;
}

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
      return { status: 400, message: validationMessage(e) };
    case 'FST_ERR_BAD_URL':
      return { status: 400, message: 'Malformed request url' };
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return { status: 414, message: 'Request-URI too long: a path element is longer than the server accepts.' };
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

/** Engine faults name no object of the target to a tenant; the log line keeps the detail. */
const ENGINE_FAULT_MESSAGE =
  'The backup data this request needs is damaged or missing on the backup target; an administrator should run `lifeboat repo verify`.';

export interface FaultOptions {
  log: Logger;
  /** The Keystone URI for WWW-Authenticate on 401s. */
  keystoneUri: string;
}

/**
 * The error → fault renderer, for the app's error handler and for errors raised before any
 * route matched (server.ts frameworkErrors), which Fastify hands over outside that handler.
 */
export function faultRenderer(opts: FaultOptions): (err: unknown, req: FastifyRequest, reply: FastifyReply) => FastifyReply {
  return (err, req, reply) => {
    if (err instanceof AppError) {
      const status = KIND_STATUS[err.kind];
      if (err instanceof RateLimitedError) reply.header('retry-after', String(Math.max(1, Math.ceil(err.retryAfterSeconds))));
      if (status >= 500) {
        opts.log.error({ reqId: req.id, err: { message: err.message, kind: err.kind } }, 'request failed');
        const msg =
          err.kind === 'unavailable' || err.kind === 'upstream'
            ? err.message
            : isEngineFault(err)
              ? `${ENGINE_FAULT_MESSAGE} (Request-ID: ${req.id})`
              : `The server has either erred or is incapable of performing the requested operation. (Request-ID: ${req.id})`;
        return sendFault(reply, status, msg);
      }
      return sendFault(reply, status, err.kind === 'unauthenticated' ? KEYSTONE_401_MESSAGE : err.message, opts.keystoneUri);
    }
    const mapped = err && typeof err === 'object' ? fromFastifyError(err as FastifyError) : null;
    if (mapped) return sendFault(reply, mapped.status, mapped.message, opts.keystoneUri);
    opts.log.error({ reqId: req.id, err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) }, 'unhandled error');
    return sendFault(reply, 500, `The server has either erred or is incapable of performing the requested operation. (Request-ID: ${req.id})`);
  };
}

/** Installs the error and not-found handlers that turn everything into faults. */
export function installFaultHandling(app: FastifyInstance, opts: FaultOptions): void {
  app.setErrorHandler(faultRenderer(opts));
  app.setNotFoundHandler((req, reply) => {
    sendFault(reply, 404, `The resource could not be found.`);
  });
}

/**
 * The raw HTTP answer to a request Node's parser refused before Fastify saw it (headers too
 * large → 431, request timeout → 408, anything else → 400), in the fault envelope and with a
 * request id like every other answer. Nothing of the request is echoed.
 */
export function clientErrorResponse(errCode: string | undefined, requestId: string): string {
  const [status, reason, message] =
    errCode === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'Request header fields too large.']
      : errCode === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'The request was not received in time.']
        : [400, 'Bad Request', 'Malformed request'];
  const body = JSON.stringify(faultBody(status, message));
  return (
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    `x-openstack-request-id: ${requestId}\r\nx-compute-request-id: ${requestId}\r\nConnection: close\r\n\r\n${body}`
  );
}
