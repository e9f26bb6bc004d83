import { Testing } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import * as fc from 'fast-check';
import {
  AgentCluster,
  AgentClusterProps,
  AgentPodOptions,
  AgentRoleSpec,
  Autoscaling,
  EnvValue,
  KedaTrigger,
  ScrapeWith,
  SupervisedRoleSpec,
  Topology,
} from '../src';
import { agentConfigErrors, isCrdObject, K8sObject, podTemplates, resolvePeers, restrictedViolations, validateCrds, validateK8s } from './support/manifests';

// Random clusters from the public props, valid and not. Whatever synth
// accepts must be objects the API server takes (Kubernetes schemas; CRD
// schemas for KEDA and the Prometheus Operator), pods that pass Pod Security
// restricted, and configs the runtime's schema takes. Whatever it rejects
// must be rejected with lines that each name one construct path and a field.

const NAMES = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta'];
const q = (s: string) => k8s.Quantity.fromString(s);

/**
 * The generators, in two modes: `mixed` sometimes draws a value synth must
 * refuse; otherwise every draw is valid, so both outcomes are exercised.
 */
function arbitraries(mixed: boolean) {
  const odd = <T>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<T>): fc.Arbitrary<T> =>
    mixed ? fc.oneof({ weight: 4, arbitrary: good }, { weight: 1, arbitrary: bad }) : good;
  const smallInt = (min: number, max: number, badMin: number, badMax: number) =>
    odd(fc.integer({ min, max }), fc.integer({ min: badMin, max: badMax }));
  const names = (min: number, max: number) =>
    odd(
      fc.uniqueArray(fc.constantFrom(...NAMES), { minLength: min, maxLength: max }),
      fc.array(fc.constantFrom(...NAMES, 'Bad_Name', 'x'.repeat(70), '-dash', 'namespace'), { minLength: 0, maxLength: max }),
    );

  const sidecar = (name: string): fc.Arbitrary<k8s.Container> =>
    fc
      .record({
        name: odd(fc.constant(name), fc.constant('agent')),
        image: odd(fc.constantFrom('envoy:1.31.0', `repo/x@sha256:${'b'.repeat(64)}`), fc.constantFrom('busybox', 'busybox:latest')),
        privileged: odd(fc.constant(false), fc.constant(true)),
        withLimits: odd(fc.constant(true), fc.constant(false)),
        withContext: fc.boolean(),
      })
      .map(({ name: n, image, privileged, withLimits, withContext }) => ({
        name: n,
        image,
        resources: withLimits ? { requests: { cpu: q('10m'), memory: q('16Mi') }, limits: { cpu: q('100m'), memory: q('64Mi') } } : undefined,
        securityContext: withContext || privileged ? { privileged, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } : undefined,
      }));

  const pods = (prefix: string): fc.Arbitrary<AgentPodOptions | undefined> =>
    fc
      .option(
        fc.record(
          {
            tolerations: fc
              .array(fc.record({ key: fc.constantFrom('dedicated', 'spot'), operator: odd(fc.constantFrom('Equal', 'Exists'), fc.constant('Equals')), effect: fc.constantFrom('NoSchedule', 'NoExecute') }), { maxLength: 2 })
              .map((ts) => ts.map((t) => (t.operator === 'Exists' ? { key: t.key, operator: 'Exists', effect: t.effect } : { ...t, value: 'agents' }))),
            nodeSelector: fc.dictionary(odd(fc.constantFrom('pool', 'node.kubernetes.io/instance-type'), fc.constant('bad key!')), fc.constantFrom('agents', 'm5.large'), { maxKeys: 2 }),
            imagePullSecrets: fc.array(odd(fc.constantFrom('regcred', 'ghcr.io-pull'), fc.constant('Reg_Cred')), { maxLength: 2 }),
            serviceAccountAnnotations: fc.constantFrom({ 'eks.amazonaws.com/role-arn': 'arn:aws:iam::1:role/x' }, { 'iam.gke.io/gcp-service-account': 'a@b.iam.gserviceaccount.com' }),
            podAnnotations: fc.constantFrom({ team: 'ai' }, { 'prometheus.io/scrape': 'false' }),
            env: fc.dictionary(
              odd(fc.constantFrom(`${prefix}_FEATURE`, `${prefix}_OTEL_NAME`), fc.constantFrom('AGENT_ROLE', '1BAD')),
              odd(fc.constantFrom(EnvValue.fromValue('on'), EnvValue.fromSecret('extra-secret', 'token'), EnvValue.fromConfigMap('settings', 'k', true)), fc.constant(EnvValue.fromSecret('Bad_Secret', 'k'))),
              { maxKeys: 2 },
            ),
            volumes: odd(fc.constantFrom<k8s.Volume[]>([], [{ name: `${prefix}-cache`, emptyDir: {} }]), fc.constant([{ name: 'host', hostPath: { path: '/' } }])),
            volumeMounts: odd(fc.constant<k8s.VolumeMount[]>([]), fc.constant([{ name: 'cache', mountPath: '/tmp' }])),
            sidecars: fc.array(sidecar(`${prefix}-side`), { maxLength: 1 }),
          },
          { requiredKeys: [] },
        ),
        { freq: 2 },
      )
      .map((o) => o ?? undefined);

  const autoscaling = odd(
    fc.constantFrom<Autoscaling | undefined | 'off'>(
      undefined,
      'off',
      Autoscaling.resource(),
      Autoscaling.resource({ minReplicas: 2, maxReplicas: 5 }),
      Autoscaling.keda(),
      Autoscaling.keda({ minReplicas: 1, maxReplicas: 4, triggers: [KedaTrigger.taskLoad(0.5)] }),
      Autoscaling.keda({ triggers: [KedaTrigger.memory(80), KedaTrigger.cpu(60)] }),
    ),
    fc.constantFrom<Autoscaling>(
      Autoscaling.resource({ minReplicas: 6, maxReplicas: 3 }),
      Autoscaling.keda({ triggers: [KedaTrigger.taskLoad(2)] }),
      Autoscaling.keda({ triggers: [KedaTrigger.cpu(0)] }),
    ),
  );

  const role = (prefix: string): fc.Arbitrary<Omit<AgentRoleSpec, 'name'>> =>
    fc
      .record(
        {
          replicas: smallInt(1, 4, -2, -1),
          maxInFlightTasks: smallInt(8, 32, -1, 0),
          fanOutConcurrency: smallInt(1, 4, -1, 0),
          models: fc.subarray(mixed ? ['gpt-4.1', 'claude-sonnet-4.5', 'gemini-2.5-flash', 'deepseek-v3.2', 'not-a-model'] : ['gpt-4.1', 'claude-sonnet-4.5', 'gemini-2.5-flash', 'deepseek-v3.2'], { minLength: 1 }),
          resources: odd(fc.constantFrom({}, { memoryLimit: '2Gi' }), fc.constantFrom({ cpuRequest: '2', cpuLimit: '1' }, { memoryRequest: 'lots' })),
          autoscaling,
          pods: pods(prefix),
        },
        { requiredKeys: [] },
      )
      .map(({ autoscaling: a, ...r }) => ({ ...r, ...(a === 'off' ? { disableAutoscaling: true } : a ? { autoscaling: a } : {}) }));

  const withRoles = (ns: string[]) => fc.tuple(...ns.map((n) => role(n.replace(/[^a-z]/gi, '').toUpperCase() || 'R')));

  const topology: fc.Arbitrary<Topology> = fc.oneof(
    names(2, 5).chain((ns) =>
      withRoles(ns).map((rs) => Topology.hubAndSpoke({ coordinator: { name: ns[0] ?? 'hub', ...(rs[0] ?? {}) }, workers: ns.slice(1).map((n, i) => ({ name: n, ...rs[i + 1] })) })),
    ),
    names(1, 5).chain((ns) => withRoles(ns).map((rs) => Topology.mesh({ peers: ns.map((n, i) => ({ name: n, ...rs[i] })) }))),
    fc.tuple(fc.integer({ min: 1, max: 2 }), names(2, 5)).chain(([nSup, ns]) =>
      withRoles(ns).map((rs) => {
        const supervisors: SupervisedRoleSpec[] = Array.from({ length: nSup }, (_, i) => ({ name: `sup-${i}`, reportsTo: 'top' }));
        const workers: SupervisedRoleSpec[] = ns.map((n, i) => ({ name: n, reportsTo: supervisors[i % nSup].name, ...rs[i] }));
        return Topology.hierarchical({ coordinator: { name: 'top' }, supervisors, workers });
      }),
    ),
  );

  const cluster: fc.Arbitrary<Omit<AgentClusterProps, 'topology'>> = fc.record(
    {
      upstream: fc.record({
        baseUrl: odd(fc.constantFrom('https://api.example.com/v1', 'http://gateway.ai.svc.cluster.local:8000/v1', 'http://10.1.2.3/v1'), fc.constantFrom('not a url', 'http://api.example.com/v1', 'ftp://x.example.com')),
        apiKeySecretName: odd(fc.constantFrom('upstream-api-key', 'llm.key'), fc.constantFrom('Bad_Name', '')),
      }),
      fanOutConcurrency: smallInt(1, 4, -1, 0),
      maxInFlightTasks: smallInt(8, 32, -1, 0),
      defaultDeadlineMs: smallInt(1000, 30000, 0, 0),
      maxDeadlineMs: smallInt(30000, 200000, 1, 999),
      upstreamEgress: fc.option(
        fc.array(fc.record({ cidr: odd(fc.constantFrom('0.0.0.0/0', '203.0.113.0/24', '2001:db8::/32'), fc.constantFrom('300.1.2.3/99', '10.0.0.0', 'x')) }), { minLength: 1, maxLength: 2 }),
        { nil: undefined },
      ),
      pods: pods('CLUSTER'),
      monitoring: fc.option(
        fc.record(
          { scrapeWith: fc.constantFrom(ScrapeWith.SERVICE_MONITOR, ScrapeWith.POD_MONITOR), minSuccessRate: odd(fc.constantFrom(0.9, 0.99), fc.constant(95)), resourceLabels: fc.constant({ release: 'prom' }) },
          { requiredKeys: ['scrapeWith'] },
        ),
        { nil: undefined },
      ),
    },
    { requiredKeys: ['upstream'] },
  );
  return fc.tuple(topology, cluster);
}

const accepted: K8sObject[] = [];
let acceptedRuns = 0;
let rejectedRuns = 0;

test('random clusters: accepted ones are schema-valid everywhere, rejected ones say where and what', () => {
  fc.assert(
    fc.property(fc.oneof(arbitraries(false), arbitraries(true)), ([topo, props]) => {
      const chart = Testing.chart();
      let objs: K8sObject[];
      try {
        new AgentCluster(chart, 'agents', { ...props, topology: topo });
        objs = Testing.synth(chart) as K8sObject[];
      } catch (e) {
        const msg = (e as Error).message;
        rejectedRuns++;
        const [head, ...lines] = msg.split('\n');
        expect(head).toBe('Validation failed with the following errors:');
        expect(lines.length).toBeGreaterThan(0);
        // one path, then the field, per line
        for (const line of lines) expect(line).toMatch(/^ {2}\[test\/agents(\/[^\]\s]+)?\] [A-Za-z][\w.[\]()' -]*: \S/);
        for (const line of lines) expect(line.match(/\[test\//g)).toHaveLength(1);
        return;
      }
      acceptedRuns++;
      for (const o of objs) {
        if (isCrdObject(o)) accepted.push(o);
        else validateK8s(o);
      }
      for (const p of podTemplates(objs)) expect({ owner: p.owner, v: restrictedViolations(p.spec) }).toEqual({ owner: p.owner, v: [] });
      for (const cm of objs.filter((o) => o.kind === 'ConfigMap' && o.data?.['agent-config.json'])) {
        const config = resolvePeers(JSON.parse(cm.data['agent-config.json']), objs);
        expect({ cm: cm.metadata.name, errors: agentConfigErrors(config) }).toEqual({ cm: cm.metadata.name, errors: [] });
      }
    }),
    { numRuns: 150, seed: 10_2026 },
  );
  // both sides were exercised
  expect(acceptedRuns).toBeGreaterThan(10);
  expect(rejectedRuns).toBeGreaterThan(10);
  // CRD objects of every accepted run, validated in one child process
  expect(validateCrds(accepted).filter((r) => r.error !== null)).toEqual([]);
});
