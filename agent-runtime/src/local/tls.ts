import { createPublicKey, generateKeyPairSync, KeyObject, randomBytes, sign } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as forge from 'node-forge';
import { peerHost } from '../config';
import { roleIdentity } from '../grpc/mtls';

/**
 * Local mode's stand-in for cert-manager: a throwaway CA and one certificate
 * per role, shaped like the ones the constructs ask cert-manager for (URI SAN
 * naming the role, DNS SAN of its headless Service, plus localhost and
 * 127.0.0.1; server and client auth; ECDSA P-256 keys).
 *
 * Node can make keys and signatures but not certificates, and node-forge can
 * build certificates but only with RSA keys, whose generation took seconds
 * per key on a loaded machine (P-256: well under a millisecond). So forge
 * lays out the certificate (names, validity, extensions), and the two parts
 * it cannot do for EC keys are put in with node:crypto: the public key
 * (SubjectPublicKeyInfo) and the ECDSA signature with its algorithm.
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

const asn1 = forge.asn1;
const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
// getTBSCertificate encodes an RSA key; this one only holds the place the EC key takes
const PLACEHOLDER_KEY = forge.pki.setRsaPublicKey(new forge.jsbn.BigInteger('1'), new forge.jsbn.BigInteger('65537'));

function ecKey(): KeyObject {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
}

/** AlgorithmIdentifier ecdsa-with-SHA256 (no parameters, RFC 5758). */
function ecdsaSha256(): forge.asn1.Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(ECDSA_WITH_SHA256).getBytes())]);
}

/** `cert` (names, validity, extensions set) with `subjectKey`'s public key, signed by `issuerKey`, as PEM. */
function signEc(cert: forge.pki.Certificate, subjectKey: KeyObject, issuerKey: KeyObject): string {
  cert.publicKey = PLACEHOLDER_KEY;
  cert.siginfo.algorithmOid = forge.pki.oids.sha256WithRSAEncryption;
  // in forge since 0.x, missing from its type definitions
  const tbs = (forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }).getTBSCertificate(cert);
  // TBSCertificate: version, serialNumber, signature (2), issuer, validity, subject, subjectPublicKeyInfo (6), extensions
  tbs.value = [...(tbs.value as forge.asn1.Asn1[])];
  tbs.value[2] = ecdsaSha256();
  const spki = createPublicKey(subjectKey).export({ type: 'spki', format: 'der' });
  tbs.value[6] = asn1.fromDer(forge.util.createBuffer(spki.toString('binary')));
  const tbsDer = Buffer.from(asn1.toDer(tbs).getBytes(), 'binary');
  const signature = sign('sha256', tbsDer, issuerKey); // DER Ecdsa-Sig-Value
  const certificate = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    tbs,
    ecdsaSha256(),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, String.fromCharCode(0) + signature.toString('binary')),
  ]);
  return forge.pem.encode({ type: 'CERTIFICATE', body: asn1.toDer(certificate).getBytes() });
}

function serial(): string {
  // positive: the top bit clear
  const b = randomBytes(16);
  b[0] &= 0x7f;
  return b.toString('hex');
}

function validity(cert: forge.pki.Certificate, days: number): void {
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 60 * 60 * 1000); // an hour back, for clock skew
  cert.validity.notAfter = new Date(now + days * 24 * 60 * 60 * 1000);
}

/** A throwaway certificate authority that signs role certificates. */
export class LocalCa {
  readonly pem: string;
  private readonly key = ecKey();
  private readonly subject: forge.pki.CertificateField[];

  constructor(name = 'agent-runtime local CA') {
    const cert = forge.pki.createCertificate();
    cert.serialNumber = serial();
    validity(cert, 2);
    this.subject = [{ name: 'commonName', value: name }];
    cert.setSubject(this.subject);
    cert.setIssuer(this.subject);
    cert.setExtensions([
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ]);
    this.pem = signEc(cert, this.key, this.key);
  }

  /** A role's certificate and key (PEM). */
  issue(spec: CertificateSpec): { cert: string; key: string } {
    const key = ecKey();
    const cert = forge.pki.createCertificate();
    cert.serialNumber = serial();
    validity(cert, 1);
    cert.setSubject([{ name: 'commonName', value: spec.role }]);
    cert.setIssuer(this.subject);
    cert.setExtensions([
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, critical: true },
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
    ]);
    return { cert: signEc(cert, key, this.key), key: key.export({ type: 'pkcs8', format: 'pem' }).toString() };
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
  for (const r of roles) {
    const config = JSON.parse(r.configFiles['agent-config.json']) as ConfigShape;
    made.set(r.name, ca.writeRole(path.join(dir, r.name, 'tls'), { cluster: config.cluster, namespace: config.namespace, role: r.name }));
  }
  return {
    configure: (role, configJson) => {
      const config = JSON.parse(configJson) as ConfigShape;
      const f = made.get(role);
      if (!f) throw new Error(`local mTLS: no certificate was made for role '${role}'`);
      config.tls = { ...f, allowedCallers: callersOf.get(role) ?? [] };
      return JSON.stringify(config);
    },
    files: (role) => made.get(role),
  };
}
