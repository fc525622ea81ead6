import { AppError } from '../lib/errors.js';

/**
 * A failed OpenStack call: which service, which call, the HTTP status (0 = no answer) and the
 * request id OpenStack gave it, so an operator can find it in that service's log. The message
 * never carries a token, a password or a full URL with credentials (only method + path).
 *
 * Kind: 'not-found' for 404 (callers turn it into their own not-found or null), 'unavailable'
 * for everything else: to a Lifeboat client a broken cloud is a dependency being down.
 */
export class OpenStackError extends AppError {
  constructor(
    readonly service: string,
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly requestId: string | null,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    const what = status === 0 ? 'no answer' : `HTTP ${status}`;
    super(status === 404 ? 'not-found' : 'unavailable', `${serviceTitle(service)} ${method} ${path} failed: ${what}${detail ? `: ${detail}` : ''}${requestId ? ` (request id ${requestId})` : ''}`, options);
  }
}

const TITLES: Record<string, string> = { compute: 'Nova', volumev3: 'Cinder', image: 'Glance', network: 'Neutron', identity: 'Keystone', 'key-manager': 'Barbican' };

export function serviceTitle(type: string): string {
  return TITLES[type] ?? type;
}

/**
 * The human message of an OpenStack error body: Nova `{"itemNotFound": {"message"}}`, Neutron
 * `{"NeutronError": {"message"}}`, Keystone `{"error": {"message"}}`, Glance plain text/HTML.
 * Bounded so a huge HTML page never lands in a job's error_msg.
 */
export function errorDetail(text: string): string {
  let msg = '';
  try {
    const body: unknown = JSON.parse(text);
    if (body && typeof body === 'object') {
      for (const v of Object.values(body as Record<string, unknown>)) {
        if (v && typeof v === 'object' && typeof (v as { message?: unknown }).message === 'string') {
          msg = (v as { message: string }).message;
          break;
        }
        if (typeof v === 'string') msg = v;
      }
    }
  } catch {
    msg = text.replace(/<[^>]*>/g, ' ');
  }
  msg = msg.replace(/\s+/g, ' ').trim();
  return msg.length > 300 ? `${msg.slice(0, 300)}…` : msg;
}
