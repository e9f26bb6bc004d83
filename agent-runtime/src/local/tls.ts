import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as forge from 'node-forge';
import { peerHost } from '../config';
import { roleIdentity } from '../grpc/mtls';

/**
 * Local mode's stand-in for cert-manager: a throwaway CA and one certificate
 * per role, shaped like the ones the constructs ask cert-manager for (URI SAN
 * naming the role, DNS SAN of its headless Service, plus localhost and
 * 127.0.0.1; server and client auth). Node can make keys but not
 * certificates, so keys come from node:crypto (fast, native) and
 * node-forge builds and signs the certificates.
 */

/** One role's files, as `tls` in its config names them. */
export interface LocalTlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

export interface CertificateSpec {
  readonly cluster: string;
  readonly namespace: string;
  readonly role: string;
}

function rsaKeys(): { forgeKey: forge.pki.rsa.PrivateKey; forgePublic: forge.pki.rsa.PublicKey; pem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(pem) as forge.pki.rsa.PrivateKey;
  return { forgeKey, forgePublic: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e), pem };
}

function serial(): string {
  // positive: the top bit clear
  const b = randomBytes(16);
  b[0] &= 0x7f;
  return b.toString('hex');
}

function validity(cert: forge.pki.Certificate, days: number): void {
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 60 * 60 * 1000); // an hour back: clocks of local processes agree, this is for skew elsewhere
  cert.validity.notAfter = new Date(now + days * 24 * 60 * 60 * 1000);
}

/** A throwaway certificate authority that signs role certificates. */
export class LocalCa {
  readonly pem: string;
  private readonly key: forge.pki.rsa.PrivateKey;
  private readonly cert: forge.pki.Certificate;

  constructor(name = 'agent-runtime local CA') {
    const keys = rsaKeys();
    const cert = forge.pki.createCertificate();
    cert.publicKey = keys.forgePublic;
    cert.serialNumber = serial();
    validity(cert, 2);
    const subject = [{ name: 'commonName', value: name }];
    cert.setSubject(subject);
    cert.setIssuer(subject);
    cert.setExtensions([
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      { name: 'subjectKeyIdentifier' },
    ]);
    cert.sign(keys.forgeKey, forge.md.sha256.create());
    this.key = keys.forgeKey;
    this.cert = cert;
    this.pem = forge.pki.certificateToPem(cert);
  }

  /** A role's certificate and key (PEM). */
  issue(spec: CertificateSpec): { cert: string; key: string } {
    const keys = rsaKeys();
    const cert = forge.pki.createCertificate();
    cert.publicKey = keys.forgePublic;
    cert.serialNumber = serial();
    validity(cert, 1);
    cert.setSubject([{ name: 'commonName', value: spec.role }]);
    cert.setIssuer(this.cert.subject.attributes);
    cert.setExtensions([
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 6, value: roleIdentity(spec.cluster, spec.namespace, spec.role) },
          { type: 2, value: peerHost(spec.role, spec.namespace) },
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
      { name: 'authorityKeyIdentifier', keyIdentifier: this.cert.generateSubjectKeyIdentifier().getBytes() },
    ]);
    cert.sign(this.key, forge.md.sha256.create());
    return { cert: forge.pki.certificateToPem(cert), key: keys.pem };
  }

  /** Writes ca.crt, tls.crt, tls.key (the names of cert-manager's Secret keys) into `dir`. */
  writeRole(dir: string, spec: CertificateSpec): LocalTlsFiles {
    mkdirSync(dir, { recursive: true });
    const { cert, key } = this.issue(spec);
    const files = { certFile: path.join(dir, 'tls.crt'), keyFile: path.join(dir, 'tls.key'), caFile: path.join(dir, 'ca.crt') };
    writeFileSync(files.certFile, cert);
    writeFileSync(files.keyFile, key, { mode: 0o600 });
    writeFileSync(files.caFile, this.pem);
    return files;
  }
}

interface ConfigShape {
  cluster: string;
  namespace: string;
  role: string;
  peers: Array<{ role: string }>;
  peersFile?: string;
  tls?: unknown;
}

/** Callee roles of every role, from the manifests' configs (inline peers or the mesh's shared peers file). */
function edges(roles: ReadonlyArray<{ name: string; configFiles: Readonly<Record<string, string>> }>): Map<string, string[]> {
  const callersOf = new Map<string, string[]>();
  for (const r of roles) {
    const config = JSON.parse(r.configFiles['agent-config.json']) as ConfigShape;
    const peers = config.peersFile ? (JSON.parse(r.configFiles[config.peersFile] ?? '[]') as ConfigShape['peers']) : config.peers;
    for (const p of peers) {
      const list = callersOf.get(p.role) ?? [];
      if (!list.includes(r.name)) list.push(r.name);
      callersOf.set(p.role, list);
    }
  }
  return callersOf;
}

/** What local mode does about mTLS for one cluster. */
export interface LocalTls {
  /** A role's config JSON with `tls` put in (or, mTLS off, taken out). */
  configure(role: string, configJson: string): string;
  /** The files made for a role (undefined with mTLS off, or before its config was written). */
  files(role: string): LocalTlsFiles | undefined;
}

/**
 * Gives every role of a local cluster mTLS: a fresh CA, one certificate per
 * role under `dir/<role>/tls`, and `tls` in each role's config
 * (allowedCallers: the roles whose peers list it). With `enabled` false, it
 * takes `tls` out instead, so manifests synthesized with mTLS on still boot
 * in plain text.
 */
export function localTls(dir: string, roles: ReadonlyArray<{ name: string; configFiles: Readonly<Record<string, string>> }>, enabled: boolean): LocalTls {
  if (!enabled) {
    return {
      configure: (_role, configJson) => {
        const config = JSON.parse(configJson) as ConfigShape;
        if (config.tls === undefined) return configJson;
        delete config.tls;
        return JSON.stringify(config);
      },
      files: () => undefined,
    };
  }
  const ca = new LocalCa();
  const callersOf = edges(roles);
  const made = new Map<string, LocalTlsFiles>();
  return {
    configure: (role, configJson) => {
      const config = JSON.parse(configJson) as ConfigShape;
      let f = made.get(role);
      if (!f) made.set(role, (f = ca.writeRole(path.join(dir, role, 'tls'), { cluster: config.cluster, namespace: config.namespace, role })));
      config.tls = { ...f, allowedCallers: callersOf.get(role) ?? [] };
      return JSON.stringify(config);
    },
    files: (role) => made.get(role),
  };
}
