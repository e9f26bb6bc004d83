// The cdk8s-plus-28 L1 classes the constructs emit, each made to write its
// props as they are; not exported from index.ts.
//
// An L1's own toJson() converts its props through jsii-generated functions
// that rebuild every nested object key by key with object spreads. On a
// 1,000-role mesh (6,000 objects) that conversion was about a third of synth
// time (`npm run bench`, synth rows). The props the constructs pass already
// use the Kubernetes field names, so the only conversion left is unwrapping
// IntOrString and Quantity, done once when the object is made; cdk8s's own
// ApiObject.toJson() does the rest (resolve, drop undefined, sort keys). The
// props stay type-checked against the L1 props interfaces, and the objects
// are still instances of the L1 classes.
import { ApiObject } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';

type L1Class = new (scope: Construct, id: string, props: any) => ApiObject;

/**
 * The L1 property names that are not the Kubernetes field names (the L1s
 * camel-case acronyms); unwrap() renames them as the L1 toJson would.
 */
const RENAMED = new Map<string, string>(
  Object.entries({
    ref: '$ref',
    schema: '$schema',
    clientIp: 'clientIP',
    clusterIp: 'clusterIP',
    datasetUuid: 'datasetUUID',
    diskUri: 'diskURI',
    downwardApi: 'downwardAPI',
    externalId: 'externalID',
    hostIp: 'hostIP',
    hostIpc: 'hostIPC',
    hostPid: 'hostPID',
    insecureSkipTlsVerify: 'insecureSkipTLSVerify',
    loadBalancerIp: 'loadBalancerIP',
    nodeId: 'nodeID',
    nonResourceUrLs: 'nonResourceURLs',
    openApiv3Schema: 'openAPIV3Schema',
    pdId: 'pdID',
    podCidr: 'podCIDR',
    podCidRs: 'podCIDRs',
    providerId: 'providerID',
    scaleIo: 'scaleIO',
    setHostnameAsFqdn: 'setHostnameAsFQDN',
    storagePolicyId: 'storagePolicyID',
    targetCpuUtilizationPercentage: 'targetCPUUtilizationPercentage',
    targetWwNs: 'targetWWNs',
    volumeId: 'volumeID',
    xKubernetesEmbeddedResource: 'x-kubernetes-embedded-resource',
    xKubernetesIntOrString: 'x-kubernetes-int-or-string',
    xKubernetesListMapKeys: 'x-kubernetes-list-map-keys',
    xKubernetesListType: 'x-kubernetes-list-type',
    xKubernetesMapType: 'x-kubernetes-map-type',
    xKubernetesPreserveUnknownFields: 'x-kubernetes-preserve-unknown-fields',
    xKubernetesValidations: 'x-kubernetes-validations',
  }),
);

/**
 * Fields whose value is a map with keys of the user's choosing (labels, data,
 * resource names): its keys are never renamed. `selector` is a label map in a
 * Service and a LabelSelector elsewhere, whose own keys need no renaming.
 */
const MAP_FIELDS = new Set([
  'selector',
  'volumeAttributes',
  'labels',
  'annotations',
  'matchLabels',
  'nodeSelector',
  'data',
  'binaryData',
  'hard',
  'requests',
  'limits',
  'default',
  'defaultRequest',
  'max',
  'min',
  'maxLimitRequestRatio',
]);

/**
 * Props as the L1 toJson would write them: IntOrString and Quantity become
 * their value, L1 names become Kubernetes names; plain objects and arrays are
 * copied, anything else (a Lazy, say) is kept for cdk8s to resolve.
 */
function unwrap(v: unknown, isMap = false): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (v instanceof k8s.IntOrString || v instanceof k8s.Quantity) return v.value;
  if (Array.isArray(v)) return v.map((x) => unwrap(x));
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return v;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) {
    const x = (v as Record<string, unknown>)[k];
    out[isMap ? k : RENAMED.get(k) ?? k] = typeof x === 'object' && x !== null ? unwrap(x, MAP_FIELDS.has(k)) : x;
  }
  return out;
}

let enabled = true;

/**
 * Tests only: with `false`, objects made afterwards go through the L1's own
 * conversion, so a test can check that both write the same manifests.
 */
export function _directL1(on: boolean): void {
  enabled = on;
}

const VIA_L1 = Symbol('agent-cluster.viaL1');

function direct<C extends L1Class>(base: C): C {
  const Direct = class extends (base as L1Class) {
    constructor(scope: Construct, id: string, props: unknown) {
      super(scope, id, enabled ? unwrap(props) : props);
      if (!enabled) Object.defineProperty(this, VIA_L1, { value: true });
    }

    public toJson(): any {
      return (this as any)[VIA_L1] ? super.toJson() : ApiObject.prototype.toJson.call(this);
    }
  };
  return Direct as unknown as C;
}

export const KubeConfigMap = direct(k8s.KubeConfigMap);
export const KubeDeployment = direct(k8s.KubeDeployment);
export const KubeHorizontalPodAutoscalerV2 = direct(k8s.KubeHorizontalPodAutoscalerV2);
export const KubeLimitRange = direct(k8s.KubeLimitRange);
export const KubeNamespace = direct(k8s.KubeNamespace);
export const KubeNetworkPolicy = direct(k8s.KubeNetworkPolicy);
export const KubePodDisruptionBudget = direct(k8s.KubePodDisruptionBudget);
export const KubePriorityClass = direct(k8s.KubePriorityClass);
export const KubeResourceQuota = direct(k8s.KubeResourceQuota);
export const KubeRole = direct(k8s.KubeRole);
export const KubeRoleBinding = direct(k8s.KubeRoleBinding);
export const KubeService = direct(k8s.KubeService);
export const KubeServiceAccount = direct(k8s.KubeServiceAccount);
export const KubeStatefulSet = direct(k8s.KubeStatefulSet);
