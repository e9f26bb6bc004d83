import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import Ajv from 'ajv';
import { App, Chart, Testing } from 'cdk8s';
import { hierarchicalChart, hubAndSpokeChart, meshChart } from '../../examples/topologies';

export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [k: string]: any;
};

export const TOPOLOGY_CHARTS: Record<string, (app: App) => Chart> = {
  'hub-and-spoke': hubAndSpokeChart,
  'mesh': meshChart,
  'hierarchical': hierarchicalChart,
};

/** The objects a topology's chart synthesizes. */
export function synthTopology(name: string): K8sObject[] {
  const app = Testing.app();
  return Testing.synth(TOPOLOGY_CHARTS[name](app)) as K8sObject[];
}

/**
 * Validates one object against the Kubernetes OpenAPI schemas shipped by
 * `kubernetes-models` (ajv-compiled). Throws with the schema error.
 *
 * Version note: kubernetes-models 4.5.1 is generated from a Kubernetes
 * release newer than 1.28 (it has 1.28's sidecar `Container.restartPolicy`
 * and later fields). Our manifests are additionally typed at compile time by
 * cdk8s-plus-28's `k8s` API, generated from the 1.28 OpenAPI, so a field
 * missing from 1.28 would not compile.
 */
export function validateK8s(obj: K8sObject): void {
  const [group, version] = obj.apiVersion.includes('/') ? obj.apiVersion.split('/') : ['', obj.apiVersion];
  const modulePath = group ? `kubernetes-models/${group}/${version}/${obj.kind}` : `kubernetes-models/${version}/${obj.kind}`;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(modulePath) as Record<string, new (data: unknown) => { validate(): void }>;
  new mod[obj.kind](obj).validate();
}

const schemaPath = path.resolve(__dirname, '..', '..', 'agent-runtime', 'schema', 'agent-config.schema.json');
const agentConfigValidator = new Ajv({ strict: true, allErrors: true }).compile(JSON.parse(readFileSync(schemaPath, 'utf8')));
/** Errors of an agent config against the runtime's schema, or []. */
export function agentConfigErrors(config: unknown): string[] {
  return agentConfigValidator(config) ? [] : (agentConfigValidator.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
}

/** Every pod template (Deployments) with its owner's name. */
export function podTemplates(objs: K8sObject[]): Array<{ owner: string; spec: any; labels: Record<string, string> }> {
  return objs.filter((o) => o.kind === 'Deployment').map((d) => ({ owner: d.metadata.name, spec: d.spec.template.spec, labels: d.spec.template.metadata.labels }));
}

const RESTRICTED_VOLUMES = new Set(['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret']);

/**
 * Violations of the Pod Security Standard "restricted" (and its baseline),
 * rule by rule as the standard lists them.
 */
export function restrictedViolations(spec: any): string[] {
  const v: string[] = [];
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) v.push('host namespaces');
  for (const vol of spec.volumes ?? []) {
    const type = Object.keys(vol).find((k) => k !== 'name')!;
    if (!RESTRICTED_VOLUMES.has(type)) v.push(`volume type ${type}`);
  }
  const podSc = spec.securityContext ?? {};
  if (podSc.seLinuxOptions?.type && !['container_t', 'container_init_t', 'container_kvm_t'].includes(podSc.seLinuxOptions.type)) v.push('seLinux type');
  for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
    const sc = c.securityContext ?? {};
    const name = `container ${c.name}`;
    if (sc.privileged) v.push(`${name}: privileged`);
    if (sc.allowPrivilegeEscalation !== false) v.push(`${name}: allowPrivilegeEscalation must be false`);
    const runAsNonRoot = sc.runAsNonRoot ?? podSc.runAsNonRoot;
    if (runAsNonRoot !== true) v.push(`${name}: runAsNonRoot must be true`);
    const uid = sc.runAsUser ?? podSc.runAsUser;
    if (uid === 0) v.push(`${name}: runAsUser 0`);
    const seccomp = sc.seccompProfile?.type ?? podSc.seccompProfile?.type;
    if (!['RuntimeDefault', 'Localhost'].includes(seccomp)) v.push(`${name}: seccompProfile must be RuntimeDefault or Localhost`);
    const drop: string[] = sc.capabilities?.drop ?? [];
    if (!drop.includes('ALL')) v.push(`${name}: capabilities must drop ALL`);
    for (const add of sc.capabilities?.add ?? []) if (add !== 'NET_BIND_SERVICE') v.push(`${name}: adds capability ${add}`);
    for (const p of c.ports ?? []) if (p.hostPort) v.push(`${name}: hostPort`);
    if (sc.procMount && sc.procMount !== 'Default') v.push(`${name}: procMount`);
    if (sc.windowsOptions?.hostProcess) v.push(`${name}: hostProcess`);
  }
  return v;
}

/** A config with its `peersFile` replaced by the list in the ConfigMap the pod projects beside it (what the runtime does at boot). */
export function resolvePeers(config: Record<string, any>, objs: K8sObject[]): Record<string, any> {
  if (config.peersFile === undefined) return config;
  const cm = objs.find((o) => o.kind === 'ConfigMap' && o.data?.[config.peersFile] !== undefined && o.data?.['agent-config.json'] === undefined);
  if (!cm) throw new Error(`no ConfigMap holds ${config.peersFile}`);
  const { peersFile, ...rest } = config;
  if (rest.peers.length > 0) throw new Error('peers must be empty beside peersFile');
  return { ...rest, peers: JSON.parse(cm.data[peersFile]) };
}

/** API groups whose objects need a CRD (KEDA, Prometheus Operator, cert-manager). */
export const CRD_GROUPS = new Set(['keda.sh', 'monitoring.coreos.com', 'cert-manager.io']);

/** True for an object of a CRD rather than a built-in kind. */
export function isCrdObject(o: K8sObject): boolean {
  return CRD_GROUPS.has(o.apiVersion.split('/')[0]);
}

/**
 * Validates CRD objects against the KEDA, Prometheus Operator and cert-manager schemas of
 * the @kubernetes-models packages (ES modules, so in a child process).
 * Returns one `{ kind, name, error }` per object; error is null when valid.
 */
export function validateCrds(objs: K8sObject[]): Array<{ kind: string; name: string; error: string | null }> {
  const script = path.join(__dirname, 'validate-crds.mjs');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { execFileSync } = require('node:child_process') as typeof import('node:child_process');
  return JSON.parse(execFileSync(process.execPath, [script], { input: JSON.stringify(objs), cwd: path.resolve(__dirname, '..', '..') }).toString('utf8'));
}

/** Validates any object: built-in kinds with kubernetes-models, CRD kinds with their CRD models. Throws with the first error. */
export function validateAny(objs: K8sObject[]): void {
  const crds = objs.filter(isCrdObject);
  for (const o of objs) if (!isCrdObject(o)) validateK8s(o);
  if (crds.length === 0) return;
  const bad = validateCrds(crds).filter((r) => r.error !== null);
  if (bad.length > 0) throw new Error(bad.map((b) => `${b.kind}/${b.name}: ${b.error}`).join('\n'));
}
