import { fromIni } from '@aws-sdk/credential-provider-ini';

/** The credential shape the S3 client takes. */
export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** No credentials could be found; its message is safe to show (names variables, no values). */
export class S3CredentialsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'S3CredentialsError';
  }
}

/** How long resolving credentials may take (a profile that assumes a role asks STS). */
const RESOLVE_TIMEOUT_MS = 10_000;

/**
 * The credential chain of an S3 target, without the network providers of the SDK's default
 * chain (EC2 instance metadata, ECS container endpoint): those hang for seconds on a host that
 * is not in AWS. In order:
 * 1. AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN);
 * 2. the shared credentials/config files (AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE,
 *    profile AWS_PROFILE or `default`), through the SDK's own file reader.
 * Resolution is bounded in time; the error names the variables to set, never a value.
 */
export function defaultCredentials(env: NodeJS.ProcessEnv = process.env): () => Promise<S3Credentials> {
  const fromFile = fromIni({ profile: env.AWS_PROFILE });
  return async () => {
    const id = env.AWS_ACCESS_KEY_ID;
    const secret = env.AWS_SECRET_ACCESS_KEY;
    if (id && secret) return { accessKeyId: id, secretAccessKey: secret, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timed out')), RESOLVE_TIMEOUT_MS);
    });
    try {
      return await Promise.race([fromFile(), timeout]);
    } catch (e) {
      const why = e instanceof Error && e.message === 'timed out' ? 'resolving the profile timed out' : 'no usable profile';
      throw new S3CredentialsError(
        `S3 credentials not found (${why}): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile in the AWS credentials file (AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE)`,
      );
    } finally {
      clearTimeout(timer);
    }
  };
}
