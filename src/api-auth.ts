import type { SecretMount } from './agent-deployment';
import { ApiAuthConfig } from './contract';
import { problem } from './problems';

/** Where the entry pod finds keys.json: a read-only Secret volume, never a ConfigMap or an env literal. */
export const API_KEYS_MOUNT_PATH = '/var/run/agent-runtime/api-keys';
/** The volume that holds it. */
export const API_KEYS_VOLUME = 'api-keys';

/** Options of `ApiAuth.apiKeys`. */
export interface ApiKeysOptions {
  /** Secret holding keys.json (`[{"tenant", "key_sha256", "daily_budget_usd"?}]`); only referenced, never read at synth. @default '<cluster>-api-keys' */
  readonly secretName?: string;
  /** Key of that Secret holding the JSON document. @default 'keys.json' */
  readonly secretKey?: string;
}

/**
 * Who may use the entry's HTTP API (the job API and A2A). The default,
 * `ApiAuth.apiKeys()`, requires `Authorization: Bearer <key>` and maps each
 * key to a tenant; `ApiAuth.none()` leaves the API open for a namespace you
 * trust (the NetworkPolicy is then the only gate).
 */
export class ApiAuth {
  /** Bearer API keys from a Secret mounted read-only into the entry's pods only. */
  public static apiKeys(options: ApiKeysOptions = {}): ApiAuth {
    return new ApiAuth('api-keys', options.secretName, options.secretKey ?? 'keys.json');
  }

  /** No authentication: only for a namespace whose every caller you trust. */
  public static none(): ApiAuth {
    return new ApiAuth('none', undefined, undefined);
  }

  private constructor(
    /** 'api-keys' or 'none'. */
    public readonly mode: string,
    private readonly secretName: string | undefined,
    private readonly secretKey: string | undefined,
  ) {}

  /** The Secret's name for a cluster, or undefined when auth is off. @internal */
  public _secretName(clusterName: string): string | undefined {
    return this.mode === 'api-keys' ? this.secretName ?? `${clusterName}-api-keys` : undefined;
  }

  /** The Secret's key holding keys.json, or undefined when auth is off. @internal */
  public _secretKey(): string | undefined {
    return this.secretKey;
  }

  /** The entry's config `auth`. @internal */
  public _config(): ApiAuthConfig {
    return this.mode === 'api-keys' ? { mode: 'api-keys', keysFile: `${API_KEYS_MOUNT_PATH}/${this.secretKey}` } : { mode: 'none' };
  }

  /** The keys Secret as the entry role's pods mount it (none when auth is off). @internal */
  public _mounts(clusterName: string): SecretMount[] {
    const secretName = this._secretName(clusterName);
    if (secretName === undefined || this.secretKey === undefined) return [];
    return [{ volumeName: API_KEYS_VOLUME, secretName, mountPath: API_KEYS_MOUNT_PATH, keys: [this.secretKey] }];
  }

  /** What is wrong with the options, one line each. @internal */
  public _problems(clusterName: string): string[] {
    const out: string[] = [];
    const name = this._secretName(clusterName);
    if (name !== undefined && !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name)) {
      out.push(problem('apiAuth.secretName', `'${name}' is not a valid Secret name`, 'use lower-case letters, digits, dashes and dots, at most 253 characters'));
    }
    if (this.secretKey !== undefined && !/^[-._a-zA-Z0-9]{1,253}$/.test(this.secretKey)) {
      out.push(problem('apiAuth.secretKey', `'${this.secretKey}' is not a valid Secret key`, "use letters, digits, '-', '_' and '.', e.g. 'keys.json'"));
    }
    return out;
  }
}
