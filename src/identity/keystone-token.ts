/**
 * The Keystone v3 token document (`POST`/`GET /v3/auth/tokens` bodies) as far as Lifeboat
 * writes (embedded identity) and reads (external validator) it.
 */

export interface KeystoneRef {
  id: string;
  name: string;
}

export interface KeystoneEndpoint {
  id: string;
  interface: 'public' | 'internal' | 'admin';
  region: string;
  region_id: string;
  url: string;
}

export interface KeystoneCatalogEntry {
  id: string;
  type: string;
  name: string;
  endpoints: KeystoneEndpoint[];
}

export interface KeystoneToken {
  methods: string[];
  user: KeystoneRef & { domain: KeystoneRef; password_expires_at: string | null };
  project?: KeystoneRef & { domain: KeystoneRef };
  roles?: KeystoneRef[];
  /** ISO-8601 with microseconds and Z. */
  expires_at: string;
  issued_at: string;
  audit_ids: string[];
  catalog?: KeystoneCatalogEntry[];
  is_domain?: boolean;
}

export interface KeystoneTokenBody {
  token: KeystoneToken;
}

/** The version document of Keystone v3 as Keystone serves it (`GET /v3`). */
export function identityV3Version(v3Url: string): Record<string, unknown> {
  return {
    id: 'v3.14',
    status: 'stable',
    updated: '2020-04-07T00:00:00Z',
    links: [{ rel: 'self', href: `${v3Url.replace(/\/+$/, '')}/` }],
    'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.identity-v3+json' }],
  };
}
