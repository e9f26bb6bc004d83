import { ApiObject, Duration } from 'cdk8s';
import { Construct, Node } from 'constructs';
import { peerAddress } from './contract';
import type { TlsConfig } from './generated/agent-config';
import { isDnsSubdomain } from './pod-options';
import { problem } from './problems';
import { Topology, TopologyKind } from './topology';

/** Where each role's certificate Secret is mounted (read-only) and the files the runtime reads. */
export const TLS_MOUNT_PATH = '/etc/agent-tls';

/** The kind of a cert-manager issuer. */
export enum IssuerKind {
  /** A namespaced `Issuer`, in the cluster's namespace. */
  ISSUER = 'Issuer',
  /** A cluster-wide `ClusterIssuer`. */
  CLUSTER_ISSUER = 'ClusterIssuer',
}

/** Lifetime of the role certificates. */
export interface AgentCertificateOptions {
  /** How long each role certificate is valid (cert-manager's minimum is 1 hour). @default Duration.days(90) */
  readonly duration?: Duration;
  /** How long before expiry cert-manager renews it; the runtime picks renewed files up without a restart. @default Duration.days(30) */
  readonly renewBefore?: Duration;
}

/** A cert-manager issuer of yours that signs the role certificates. */
export interface CertManagerIssuerOptions extends AgentCertificateOptions {
  /** Name of the issuer. It must put its CA in the Secret's ca.crt (CA, Vault, Venafi issuers do; ACME does not). */
  readonly issuerName: string;
  /** Issuer or ClusterIssuer. @default IssuerKind.ISSUER */
  readonly issuerKind?: IssuerKind;
  /** API group of the issuer (an external issuer has its own). @default 'cert-manager.io' */
  readonly issuerGroup?: string;
}

/** The self-signed CA chain the construct synthesizes. */
export interface SelfSignedMtlsOptions extends AgentCertificateOptions {
  /** How long the CA certificate is valid. @default Duration.days(365) */
  readonly caDuration?: Duration;
}

interface IssuerRef {
  name: string;
  kind: string;
  group: string;
}

/** The URI SAN that names a role: `spiffe://<cluster>.<namespace>/role/<role>` (agent-runtime/CONTRACT.md, "mTLS"). */
export function roleIdentity(cluster: string, namespace: string, role: string): string {
  return `spiffe://${cluster}.${namespace}/role/${role}`;
}

/**
 * mTLS between the agents of an AgentCluster, with certificates from
 * cert-manager: one `Certificate` per role (its URI SAN names the role, its
 * DNS SAN is the role's headless gRPC Service), its Secret mounted
 * read-only, and each role's config listing the roles with an edge to it,
 * the only callers its gRPC server lets through.
 *
 * Needs cert-manager's CRDs (cert-manager.io/v1) in the cluster.
 */
export class AgentMtls {
  /** Role certificates from an issuer you run (Issuer or ClusterIssuer). */
  public static certManager(options: CertManagerIssuerOptions): AgentMtls {
    return new AgentMtls(options, options);
  }

  /** A CA made in the cluster: a self-signed Issuer signs a CA Certificate, and a CA Issuer on it signs the role certificates. */
  public static selfSigned(options: SelfSignedMtlsOptions = {}): AgentMtls {
    return new AgentMtls(undefined, options, options.caDuration ?? Duration.days(365));
  }

  private constructor(
    private readonly issuer: CertManagerIssuerOptions | undefined,
    private readonly lifetime: AgentCertificateOptions,
    private readonly caDuration?: Duration,
  ) {}

  /** Name of the Secret holding `role`'s certificate, key and CA (cert-manager's tls.crt, tls.key, ca.crt). */
  public secretNameFor(role: string): string {
    return `${role}-tls`;
  }

  /** The config's `tls` for a role: its mounted files and the roles allowed to call it. @internal */
  public _tlsConfig(topology: Topology, role: string): TlsConfig {
    const files = { certFile: `${TLS_MOUNT_PATH}/tls.crt`, keyFile: `${TLS_MOUNT_PATH}/tls.key`, caFile: `${TLS_MOUNT_PATH}/ca.crt` };
    // In a mesh every member calls every member: its callers are its peers, which the
    // config already lists once per cluster (peers.json), so naming them again in each
    // config would make the manifests grow with the square of the mesh.
    if (topology.kind === TopologyKind.MESH) return { ...files, allowedCallers: [], peersMayCall: true };
    return { ...files, allowedCallers: topology.callersOf(role) };
  }

  /** Creates the issuer chain (self-signed) and one Certificate per role under `scope`. @internal */
  public _bind(scope: Construct, id: string, cluster: { name: string; namespace: string; roles: readonly string[] }): Construct {
    const c = new Construct(scope, id);
    const ns = cluster.namespace;
    const labels = { 'app.kubernetes.io/part-of': cluster.name, 'app.kubernetes.io/managed-by': 'cdk8s-agent-cluster' };
    const duration = this.lifetime.duration ?? Duration.days(90);
    const renewBefore = this.lifetime.renewBefore ?? Duration.days(30);
    let issuerRef: IssuerRef;
    if (this.issuer) {
      issuerRef = { name: this.issuer.issuerName, kind: this.issuer.issuerKind ?? IssuerKind.ISSUER, group: this.issuer.issuerGroup ?? 'cert-manager.io' };
    } else {
      const root = `${cluster.name}-selfsigned`;
      const ca = `${cluster.name}-ca`;
      new ApiObject(c, 'selfsigned-issuer', { apiVersion: 'cert-manager.io/v1', kind: 'Issuer', metadata: { name: root, namespace: ns, labels }, spec: { selfSigned: {} } });
      new ApiObject(c, 'ca-certificate', {
        apiVersion: 'cert-manager.io/v1',
        kind: 'Certificate',
        metadata: { name: ca, namespace: ns, labels },
        spec: {
          isCA: true,
          commonName: `${cluster.name}.${ns} agents CA`,
          secretName: ca,
          duration: goDuration(this.caDuration!),
          privateKey: { algorithm: 'ECDSA', size: 256 },
          issuerRef: { name: root, kind: 'Issuer', group: 'cert-manager.io' },
        },
      });
      new ApiObject(c, 'ca-issuer', { apiVersion: 'cert-manager.io/v1', kind: 'Issuer', metadata: { name: ca, namespace: ns, labels }, spec: { ca: { secretName: ca } } });
      issuerRef = { name: ca, kind: 'Issuer', group: 'cert-manager.io' };
    }
    for (const role of cluster.roles) {
      const host = peerAddress(role, ns).replace(/:\d+$/, '');
      new ApiObject(c, `${role}-certificate`, {
        apiVersion: 'cert-manager.io/v1',
        kind: 'Certificate',
        metadata: { name: this.secretNameFor(role), namespace: ns, labels: { ...labels, 'agents.cdk8s.io/role': role } },
        spec: {
          secretName: this.secretNameFor(role),
          uris: [roleIdentity(cluster.name, ns, role)],
          dnsNames: [host],
          usages: ['digital signature', 'server auth', 'client auth'],
          duration: goDuration(duration),
          renewBefore: goDuration(renewBefore),
          // a new key at each renewal, so a leaked key dies with its certificate
          privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
          issuerRef,
        },
      });
    }
    Node.of(c).addValidation({ validate: () => this.problems(duration, renewBefore) });
    return c;
  }

  private problems(duration: Duration, renewBefore: Duration): string[] {
    const out: string[] = [];
    if (this.issuer) {
      if (!isDnsSubdomain(this.issuer.issuerName)) out.push(problem('mtls.issuerName', `'${this.issuer.issuerName}' is not a valid issuer name`, 'name your cert-manager Issuer or ClusterIssuer (lower-case letters, digits, dashes, dots)'));
      const group = this.issuer.issuerGroup;
      if (group !== undefined && !isDnsSubdomain(group)) out.push(problem('mtls.issuerGroup', `'${group}' is not an API group`, "use e.g. 'cert-manager.io' or your external issuer's group"));
    }
    const seconds = (d: Duration) => d.toSeconds();
    if (!(seconds(duration) >= 3600)) out.push(problem('mtls.duration', `${goDuration(duration)} is shorter than the 1h cert-manager accepts`, 'use at least Duration.hours(1), e.g. Duration.days(90)'));
    if (!(seconds(renewBefore) >= 300)) out.push(problem('mtls.renewBefore', `${goDuration(renewBefore)} is under the 5m cert-manager accepts`, 'use at least Duration.minutes(5), e.g. Duration.days(30)'));
    if (seconds(renewBefore) >= seconds(duration)) {
      out.push(problem('mtls.renewBefore', `${goDuration(renewBefore)} is not shorter than duration ${goDuration(duration)}, so the certificate would renew forever`, 'make renewBefore shorter than duration, e.g. a third of it'));
    }
    if (this.caDuration !== undefined && seconds(this.caDuration) <= seconds(duration)) {
      out.push(problem('mtls.caDuration', `${goDuration(this.caDuration)} is not longer than the role certificates' ${goDuration(duration)}`, 'make the CA outlive the certificates it signs, e.g. Duration.days(365)'));
    }
    return out;
  }
}

/** A Duration as the Go duration cert-manager reads: whole hours when it is, else minutes or seconds. */
function goDuration(d: Duration): string {
  const s = d.toSeconds();
  if (s % 3600 === 0) return `${s / 3600}h`;
  if (s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}
