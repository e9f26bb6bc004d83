import { readFileSync } from 'node:fs';
import { checkServerIdentity, PeerCertificate } from 'node:tls';
import { createPrivateKey, KeyObject, X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { AgentConfig, ConfigError, PeerEntry, TlsConfig } from '../config';
import { Logger } from '../logger';
import { RuntimeMetrics } from '../metrics';
import { AgentServiceClient, newClient } from './service';

/**
 * mTLS between agents (CONTRACT.md, "mTLS"). Each role's certificate names
 * the role in one URI SAN, `spiffe://<cluster>.<namespace>/role/<role>`; a
 * callee serves gRPC over TLS, requires a client certificate its CA signed,
 * and lets an AgentService call through only when the caller's role is in
 * `tls.allowedCallers` (the topology's edges into this role; in a mesh,
 * `peersMayCall` adds every role of `peers`). A caller
 * checks the callee's certificate the same way: its DNS SAN must be the
 * callee's Service name and its URI SAN the callee's role.
 *
 * The files are read by grpc-js's FileWatcherCertificateProvider, which
 * re-reads them every `refreshMs`: cert-manager renews a Secret in place and
 * the kubelet swaps the mounted files, so a rotated certificate is used for
 * new connections without a restart.
 */

/** How often the certificate files are read again (rotation). */
export const TLS_REFRESH_MS = 60_000;

/** gRPC methods the per-edge rule applies to; the health service is open to any certificate the CA signed. */
const GUARDED_PREFIX = '/agents.v1.AgentService/';

/** `<cluster>.<namespace>`: the trust domain of a cluster's agent identities. */
export function trustDomain(cluster: string, namespace: string): string {
  return `${cluster}.${namespace}`;
}

/** The URI SAN naming `role` of a cluster: `spiffe://<cluster>.<namespace>/role/<role>`. */
export function roleIdentity(cluster: string, namespace: string, role: string): string {
  return `spiffe://${trustDomain(cluster, namespace)}/role/${role}`;
}

/**
 * The role a certificate names in its URI SANs within `domain`, or why it
 * names none. `subjectAltName` is Node's rendering (`DNS:a, URI:b, ...`);
 * entries Node had to quote hold characters no role name has, so they never match.
 */
export function roleOf(subjectAltName: string | undefined, domain: string): { role: string } | { problem: string } {
  const prefix = `URI:spiffe://${domain}/role/`;
  const roles = (subjectAltName ?? '')
    .split(', ')
    .filter((e) => e.startsWith(prefix))
    .map((e) => e.slice(prefix.length))
    .filter((r) => /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(r));
  if (roles.length === 1) return { role: roles[0] };
  if (roles.length === 0) return { problem: `its certificate names no role of spiffe://${domain} (a URI SAN spiffe://${domain}/role/<role>)` };
  return { problem: `its certificate names ${roles.length} roles (${roles.join(', ')}); an agent certificate names one` };
}

/** Every PEM certificate of a bundle. */
function pemCertificates(text: string): X509Certificate[] {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

function read(file: string, field: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(field, `cannot read '${file}': ${(e as Error).message}`);
  }
}

/**
 * Checks the files once at boot, so a wrong mount stops the process with a
 * message naming the field instead of failing every call later: the
 * certificate parses, matches the key, is signed by the CA bundle and names
 * this agent's role.
 */
function checkFiles(tls: TlsConfig, config: AgentConfig): void {
  let cert: X509Certificate;
  try {
    [cert] = pemCertificates(read(tls.certFile, 'tls.certFile'));
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError('tls.certFile', `'${tls.certFile}' is not a PEM certificate: ${(e as Error).message}`);
  }
  if (!cert) throw new ConfigError('tls.certFile', `'${tls.certFile}' holds no PEM certificate`);
  let key: KeyObject;
  try {
    key = createPrivateKey(read(tls.keyFile, 'tls.keyFile'));
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError('tls.keyFile', `'${tls.keyFile}' is not a PEM private key: ${(e as Error).message}`);
  }
  if (!cert.checkPrivateKey(key)) throw new ConfigError('tls.keyFile', `'${tls.keyFile}' is not the key of the certificate in '${tls.certFile}'`);
  let cas: X509Certificate[];
  try {
    cas = pemCertificates(read(tls.caFile, 'tls.caFile'));
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError('tls.caFile', `'${tls.caFile}' is not a PEM bundle: ${(e as Error).message}`);
  }
  if (cas.length === 0) throw new ConfigError('tls.caFile', `'${tls.caFile}' holds no PEM certificate`);
  if (!cas.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey))) {
    throw new ConfigError('tls.caFile', `no certificate in '${tls.caFile}' signed '${tls.certFile}' (issuer: ${cert.issuer.replace(/\n/g, ', ')})`);
  }
  const own = roleOf(cert.subjectAltName, trustDomain(config.cluster, config.namespace));
  if ('problem' in own) throw new ConfigError('tls.certFile', `cannot serve role '${config.role}': ${own.problem}`);
  if (own.role !== config.role) throw new ConfigError('tls.certFile', `names role '${own.role}', not this agent's role '${config.role}'`);
}

export interface AgentTlsOptions {
  readonly metrics: RuntimeMetrics;
  readonly logger: Logger;
  /** @default TLS_REFRESH_MS */
  readonly refreshMs?: number;
}

/** One agent's mTLS: server credentials, the per-edge authorization, and the credentials it dials peers with. */
export class AgentTls {
  /**
   * Checks the files, then waits for the provider's first read, so the
   * server's first connection already has a certificate to present.
   */
  static async load(config: AgentConfig, opts: AgentTlsOptions): Promise<AgentTls> {
    const tls = config.tls!;
    checkFiles(tls, config);
    const t = new AgentTls(config, tls, opts);
    await t.primed;
    return t;
  }

  /** What the server binds with: TLS, client certificate required, signed by the CA. */
  readonly serverCredentials: grpc.ServerCredentials;
  private readonly provider: grpc.experimental.FileWatcherCertificateProvider;
  private readonly allowed: ReadonlySet<string>;
  private readonly domain: string;
  private readonly primed: Promise<void>;
  private readonly keepFresh: { ca: grpc.experimental.CaCertificateUpdateListener; identity: grpc.experimental.IdentityCertificateUpdateListener };
  private readonly channelCredentials = new Map<string, grpc.ChannelCredentials>();

  private constructor(
    private readonly config: AgentConfig,
    tls: TlsConfig,
    private readonly opts: AgentTlsOptions,
  ) {
    // a mesh lists its members once (peers), not again as callers of each one
    this.allowed = new Set([...tls.allowedCallers, ...(tls.peersMayCall ? config.peers.map((p) => p.role) : [])]);
    this.domain = trustDomain(config.cluster, config.namespace);
    this.provider = new grpc.experimental.FileWatcherCertificateProvider({
      certificateFile: tls.certFile,
      privateKeyFile: tls.keyFile,
      caCertificateFile: tls.caFile,
      refreshIntervalMs: opts.refreshMs ?? TLS_REFRESH_MS,
    });
    // Our own listeners keep the provider reading for the agent's whole life
    // (it stops when nobody listens), and tell us when the first read is in.
    let ca = false;
    let identity = false;
    let done!: () => void;
    this.primed = new Promise<void>((r) => (done = r));
    this.keepFresh = {
      ca: (u) => {
        if (u === null) opts.logger.error({ file: tls.caFile }, 'tls: CA file unreadable; new connections fail until it is readable again');
        ca = true;
        if (identity) done();
      },
      identity: (u) => {
        if (u === null) opts.logger.error({ file: tls.certFile }, 'tls: certificate or key unreadable; new connections fail until they are readable again');
        identity = true;
        if (ca) done();
      },
    };
    this.provider.addCaCertificateListener(this.keepFresh.ca);
    this.provider.addIdentityCertificateListener(this.keepFresh.identity);
    // one provider serves as both the CA and the identity source
    this.serverCredentials = grpc.experimental.createCertificateProviderServerCredentials(this.provider, this.provider, true);
  }

  /**
   * Server interceptor: an AgentService call goes through only when the
   * caller's certificate names a role with an edge to this one; otherwise
   * PERMISSION_DENIED naming the caller's role, counted in
   * agent_grpc_refused_total{reason}.
   */
  readonly authorize: grpc.ServerInterceptor = (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, mdNext) => {
            if (!method.path.startsWith(GUARDED_PREFIX)) return mdNext(metadata);
            const refusal = this.refusal(call.getAuthContext().sslPeerCertificate);
            if (!refusal) return mdNext(metadata);
            this.opts.metrics.grpcRefused.inc({ reason: refusal.reason });
            this.opts.logger.warn({ method: method.path, reason: refusal.reason, caller: refusal.caller }, 'gRPC call refused');
            call.sendStatus({ code: grpc.status.PERMISSION_DENIED, details: refusal.message, metadata: new grpc.Metadata() });
          },
        });
      },
    });

  /** Why a caller presenting `cert` may not call this role, or undefined when it may. */
  private refusal(cert: PeerCertificate | undefined): { reason: 'no_role' | 'caller_not_allowed'; caller?: string; message: string } | undefined {
    const me = this.config.role;
    const named = roleOf(cert?.subjectaltname, this.domain);
    if ('problem' in named) return { reason: 'no_role', message: `role '${me}' refuses the caller: ${named.problem}` };
    if (this.allowed.has(named.role)) return undefined;
    const allowed = [...this.allowed];
    return {
      reason: 'caller_not_allowed',
      caller: named.role,
      message: `role '${named.role}' may not call role '${me}': the topology has no edge from '${named.role}' to '${me}' (allowed callers: ${allowed.length > 0 ? allowed.join(', ') : 'none'})`,
    };
  }

  /**
   * Credentials to dial a pod of `peerRole` with: this role's certificate,
   * the CA, and a check that the callee presents `peerRole`'s identity.
   */
  channelCredentialsFor(peerRole: string): grpc.ChannelCredentials {
    let creds = this.channelCredentials.get(peerRole);
    if (!creds) {
      const expected = roleIdentity(this.config.cluster, this.config.namespace, peerRole);
      creds = grpc.experimental.createCertificateProviderChannelCredentials(this.provider, this.provider, {
        checkServerIdentity: (host, cert) => {
          const hostProblem = checkServerIdentity(host, cert);
          if (hostProblem) return hostProblem;
          const named = roleOf(cert.subjectaltname, this.domain);
          if ('role' in named && named.role === peerRole) return undefined;
          return new Error(`callee at ${host} is not role '${peerRole}' (${expected}): ${'role' in named ? `it names role '${named.role}'` : named.problem}`);
        },
      });
      this.channelCredentials.set(peerRole, creds);
    }
    return creds;
  }

  /**
   * Channel options for a pod behind `serviceHost`: pods are dialled by IP,
   * so the certificate is checked against the headless Service's DNS name
   * (one of its DNS SANs) instead.
   */
  static channelOptions(serviceHost: string): grpc.ChannelOptions {
    return { 'grpc.ssl_target_name_override': serviceHost, 'grpc.default_authority': serviceHost };
  }

  /** Opens the channel to one pod of `peer` (PeerPool's `dial`): dialled by IP, checked against the peer's Service name and role. */
  readonly dial = (address: string, peer: PeerEntry): AgentServiceClient =>
    newClient(address, this.channelCredentialsFor(peer.role), AgentTls.channelOptions(peer.address.slice(0, peer.address.lastIndexOf(':'))));

  /** Stops re-reading the files (once the server and every channel are closed). */
  close(): void {
    this.provider.removeCaCertificateListener(this.keepFresh.ca);
    this.provider.removeIdentityCertificateListener(this.keepFresh.identity);
  }
}
