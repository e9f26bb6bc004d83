import { ApiObject } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct, Node } from 'constructs';
import { AgentDeployment } from './agent-deployment';
import { KubeConfigMap, KubeNetworkPolicy } from './l1';
import { HTTP_PORT, LABEL_CLUSTER } from './labels';
import { problem } from './problems';

/** Which Prometheus Operator object scrapes each role. */
export enum ScrapeWith {
  /** A ServiceMonitor per role, on the role's HTTP Service. */
  SERVICE_MONITOR = 'ServiceMonitor',
  /** A PodMonitor per role, on its pods directly. */
  POD_MONITOR = 'PodMonitor',
}

/**
 * Scraping, alerts and a dashboard for a cluster. Needs the Prometheus
 * Operator (ServiceMonitor / PodMonitor / PrometheusRule CRDs) and, for the
 * dashboard, Grafana's dashboard sidecar.
 */
export interface AgentMonitoringOptions {
  /** ServiceMonitor or PodMonitor per role. @default ScrapeWith.SERVICE_MONITOR */
  readonly scrapeWith?: ScrapeWith;
  /** Scrape interval (Prometheus duration). @default '30s' */
  readonly scrapeInterval?: string;
  /** Labels of the namespace Prometheus runs in; its pods may reach port 8080 /metrics. @default { 'kubernetes.io/metadata.name': 'monitoring' } */
  readonly monitoringNamespaceLabels?: { [key: string]: string };
  /** Labels of the Prometheus pods in that namespace. @default - any pod of that namespace */
  readonly monitoringPodLabels?: { [key: string]: string };
  /** Labels on the monitors and the rule, for the Prometheus resource's selectors (e.g. { release: 'kube-prometheus-stack' }). @default - none */
  readonly resourceLabels?: { [key: string]: string };
  /** Create the PrometheusRule with the alerts. @default true */
  readonly alerts?: boolean;
  /** Alert when a role's task success rate over 10 minutes is below this fraction. @default 0.95 */
  readonly minSuccessRate?: number;
  /** Alert when the cluster's upstream spend rate is above this many USD per hour. @default 50 */
  readonly maxSpendUsdPerHour?: number;
  /** Alert when retries per upstream attempt of a model exceed this fraction (a retry storm). @default 0.5 */
  readonly maxRetryRatio?: number;
  /** Alert ("budget nearly spent") when less than this fraction of a tenant's daily or the cluster's hourly budget is left. @default 0.1 */
  readonly budgetAlertRemainingFraction?: number;
  /** Create the Grafana dashboard ConfigMap. @default true */
  readonly dashboard?: boolean;
  /** Labels of the dashboard ConfigMap that Grafana's sidecar watches for. @default { grafana_dashboard: '1' } */
  readonly dashboardLabels?: { [key: string]: string };
}

/** Props of AgentMonitoring. */
export interface AgentMonitoringProps extends AgentMonitoringOptions {
  /** Cluster name (label value, object names). */
  readonly clusterName: string;
  /** Namespace of the agents. */
  readonly namespace: string;
  /** The roles to scrape. */
  readonly agents: AgentDeployment[];
}

/** One alert of the PrometheusRule. */
interface Alert {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly severity: string;
  readonly summary: string;
}

/**
 * Observability as code for one AgentCluster: a ServiceMonitor or PodMonitor
 * per role, the NetworkPolicy that lets Prometheus reach /metrics, a
 * PrometheusRule with the alerts that matter for agents and a Grafana
 * dashboard ConfigMap. Every query names only metrics the runtime exports.
 */
export class AgentMonitoring extends Construct {
  /** The monitors, one per role. */
  public readonly monitors: ApiObject[] = [];
  /** The PrometheusRule, when alerts are on. */
  public readonly rule?: ApiObject;
  /** The dashboard ConfigMap, when the dashboard is on. */
  public readonly dashboard?: k8s.KubeConfigMap;
  /** The NetworkPolicy admitting the monitoring namespace to port 8080. */
  public readonly scrapePolicy: k8s.KubeNetworkPolicy;

  constructor(scope: Construct, id: string, props: AgentMonitoringProps) {
    super(scope, id);
    const ns = props.namespace;
    const cluster = props.clusterName;
    const interval = props.scrapeInterval ?? '30s';
    const kind = props.scrapeWith ?? ScrapeWith.SERVICE_MONITOR;
    const resourceLabels = { [LABEL_CLUSTER]: cluster, ...(props.resourceLabels ?? {}) };
    const minSuccess = props.minSuccessRate ?? 0.95;
    const maxSpend = props.maxSpendUsdPerHour ?? 50;
    const maxRetry = props.maxRetryRatio ?? 0.5;
    const budgetLeft = props.budgetAlertRemainingFraction ?? 0.1;

    for (const agent of props.agents) {
      const metadata = { name: agent.role, namespace: ns, labels: { ...agent.selector, ...(props.resourceLabels ?? {}) } };
      const endpoint = { port: 'http', path: '/metrics', interval };
      this.monitors.push(
        kind === ScrapeWith.POD_MONITOR
          ? new ApiObject(this, `${agent.role}-monitor`, {
            apiVersion: 'monitoring.coreos.com/v1',
            kind: 'PodMonitor',
            metadata,
            spec: { selector: { matchLabels: agent.selector }, namespaceSelector: { matchNames: [ns] }, podMetricsEndpoints: [endpoint] },
          })
          : new ApiObject(this, `${agent.role}-monitor`, {
            apiVersion: 'monitoring.coreos.com/v1',
            kind: 'ServiceMonitor',
            metadata,
            // The role's gRPC Service carries the same labels but no 'http' port, so only the HTTP Service yields targets.
            spec: { selector: { matchLabels: agent.selector }, namespaceSelector: { matchNames: [ns] }, endpoints: [endpoint] },
          }),
      );
    }

    this.scrapePolicy = new KubeNetworkPolicy(this, 'scrape-policy', {
      metadata: { name: `${cluster}-metrics`, namespace: ns },
      spec: {
        podSelector: { matchLabels: { [LABEL_CLUSTER]: cluster } },
        policyTypes: ['Ingress'],
        ingress: [
          {
            from: [
              {
                namespaceSelector: { matchLabels: props.monitoringNamespaceLabels ?? { 'kubernetes.io/metadata.name': 'monitoring' } },
                podSelector: props.monitoringPodLabels ? { matchLabels: props.monitoringPodLabels } : undefined,
              },
            ],
            ports: [{ protocol: 'TCP', port: k8s.IntOrString.fromNumber(HTTP_PORT) }],
          },
        ],
      },
    });

    if (props.alerts ?? true) {
      this.rule = new ApiObject(this, 'rule', {
        apiVersion: 'monitoring.coreos.com/v1',
        kind: 'PrometheusRule',
        metadata: { name: `${cluster}-alerts`, namespace: ns, labels: resourceLabels },
        spec: {
          groups: [
            {
              name: `${cluster}.agents`,
              rules: agentAlerts(ns, { minSuccess, maxSpend, maxRetry, budgetLeft }).map((a) => ({
                alert: a.alert,
                expr: a.expr,
                for: a.for,
                labels: { severity: a.severity, [LABEL_CLUSTER]: cluster },
                annotations: { summary: a.summary },
              })),
            },
          ],
        },
      });
    }

    if (props.dashboard ?? true) {
      this.dashboard = new KubeConfigMap(this, 'dashboard', {
        metadata: { name: `${cluster}-dashboard`, namespace: ns, labels: { ...(props.dashboardLabels ?? { grafana_dashboard: '1' }), [LABEL_CLUSTER]: cluster } },
        data: { [`${cluster}.json`]: JSON.stringify(dashboardJson(cluster, ns), null, 2) },
      });
    }

    Node.of(this).addValidation({
      validate: () => {
        const errors: string[] = [];
        if (!/^[0-9]+(ms|s|m|h)$/.test(interval)) errors.push(problem('monitoring.scrapeInterval', `'${interval}' is not a Prometheus duration`, "write e.g. '30s' or '1m'"));
        if (!(minSuccess > 0 && minSuccess <= 1)) errors.push(problem('monitoring.minSuccessRate', `${minSuccess} is not a fraction in (0, 1]`, 'use e.g. 0.95'));
        if (!(maxSpend > 0)) errors.push(problem('monitoring.maxSpendUsdPerHour', `${maxSpend} is not above 0`, 'use e.g. 50'));
        if (!(maxRetry > 0)) errors.push(problem('monitoring.maxRetryRatio', `${maxRetry} is not above 0`, 'use e.g. 0.5'));
        if (!(budgetLeft > 0 && budgetLeft < 1)) errors.push(problem('monitoring.budgetAlertRemainingFraction', `${budgetLeft} is not a fraction in (0, 1)`, 'use e.g. 0.1'));
        if (Object.keys(props.monitoringNamespaceLabels ?? { x: '' }).length === 0) {
          errors.push(problem('monitoring.monitoringNamespaceLabels', 'empty labels would admit every namespace to /metrics', "name the monitoring namespace, e.g. { 'kubernetes.io/metadata.name': 'monitoring' }"));
        }
        return errors;
      },
    });
  }
}

/** The alerts; thresholds from the options. Every metric here is one agent-runtime/src/metrics.ts exports. */
function agentAlerts(ns: string, t: { minSuccess: number; maxSpend: number; maxRetry: number; budgetLeft: number }): Alert[] {
  const sel = `{namespace="${ns}"}`;
  return [
    {
      alert: 'AgentModelCircuitOpen',
      expr: `max by (role, model) (agent_circuit_breaker_state${sel}) >= 2`,
      for: '2m',
      severity: 'warning',
      summary: 'The circuit of model {{ $labels.model }} is open on role {{ $labels.role }}: calls go to fallbacks or fail.',
    },
    {
      alert: 'AgentTaskSuccessRateLow',
      expr: `sum by (role) (rate(agent_tasks_total{namespace="${ns}",outcome="ok"}[10m])) / sum by (role) (rate(agent_tasks_total${sel}[10m])) < ${t.minSuccess}`,
      for: '10m',
      severity: 'critical',
      summary: `Role {{ $labels.role }} completes fewer than ${t.minSuccess * 100} % of its tasks.`,
    },
    {
      alert: 'AgentDeadlineMisses',
      expr: `sum by (role) (rate(agent_tasks_total{namespace="${ns}",outcome="deadline_exceeded"}[5m])) > 0`,
      for: '5m',
      severity: 'warning',
      summary: 'Tasks of role {{ $labels.role }} miss their deadline.',
    },
    {
      alert: 'AgentRetryStorm',
      expr: `sum by (role, model) (rate(agent_upstream_retries_total${sel}[5m])) / sum by (role, model) (rate(agent_upstream_requests_total${sel}[5m])) > ${t.maxRetry}`,
      for: '5m',
      severity: 'warning',
      summary: `Model {{ $labels.model }} on role {{ $labels.role }} is retried on more than ${t.maxRetry * 100} % of attempts.`,
    },
    {
      alert: 'AgentSpendRateHigh',
      expr: `sum(rate(agent_cost_usd_total${sel}[1h])) * 3600 > ${t.maxSpend}`,
      for: '15m',
      severity: 'warning',
      summary: `Upstream spend is above ${t.maxSpend} USD per hour.`,
    },
    {
      // the gauges are per pod (each pod's view of the budget; with a job store every pod sees the shared one): the lowest share counts
      alert: 'AgentBudgetNearlySpent',
      expr: `min by (budget, tenant) (agent_budget_remaining_usd${sel} / agent_budget_limit_usd${sel}) < ${t.budgetLeft}`,
      for: '5m',
      severity: 'warning',
      summary: `Less than ${t.budgetLeft * 100} % of the {{ $labels.budget }} budget{{ if $labels.tenant }} of tenant {{ $labels.tenant }}{{ end }} is left; calls that do not fit end budget_exceeded.`,
    },
    {
      alert: 'AgentPodsNotReady',
      expr: `sum by (role) (1 - agent_ready${sel}) > 0`,
      for: '10m',
      severity: 'warning',
      summary: '{{ $value }} pods of role {{ $labels.role }} are not ready (draining, peers unresolved or every model circuit open).',
    },
  ];
}

/** A Grafana dashboard (schema 39) over the runtime's metrics. */
function dashboardJson(cluster: string, ns: string): Record<string, unknown> {
  const sel = `{namespace="${ns}"}`;
  const panels: Array<{ title: string; expr: string; legend: string; unit: string }> = [
    { title: 'Jobs per second by outcome', expr: `sum by (outcome) (rate(agent_jobs_total${sel}[5m]))`, legend: '{{outcome}}', unit: 'reqps' },
    { title: 'Task success rate by role', expr: `sum by (role) (rate(agent_tasks_total{namespace="${ns}",outcome="ok"}[5m])) / sum by (role) (rate(agent_tasks_total${sel}[5m]))`, legend: '{{role}}', unit: 'percentunit' },
    { title: 'Load against capacity by role', expr: `sum by (role) (agent_tasks_held${sel}) / sum by (role) (agent_task_capacity${sel})`, legend: '{{role}}', unit: 'percentunit' },
    { title: 'Upstream p95 latency by model', expr: `histogram_quantile(0.95, sum by (model, le) (rate(agent_upstream_request_duration_seconds_bucket${sel}[5m])))`, legend: '{{model}}', unit: 's' },
    { title: 'Upstream attempts by outcome', expr: `sum by (model, outcome) (rate(agent_upstream_requests_total${sel}[5m]))`, legend: '{{model}} {{outcome}}', unit: 'reqps' },
    { title: 'Retries by model', expr: `sum by (model, reason) (rate(agent_upstream_retries_total${sel}[5m]))`, legend: '{{model}} {{reason}}', unit: 'reqps' },
    { title: 'Circuit state by model (0 closed, 2 open)', expr: `max by (role, model) (agent_circuit_breaker_state${sel})`, legend: '{{role}} {{model}}', unit: 'none' },
    { title: 'Spend (USD per hour)', expr: `sum by (model) (rate(agent_cost_usd_total${sel}[1h])) * 3600`, legend: '{{model}}', unit: 'currencyUSD' },
    { title: 'Tokens per second', expr: `sum by (model, kind) (rate(agent_tokens_total${sel}[5m]))`, legend: '{{model}} {{kind}}', unit: 'none' },
    { title: 'Pods ready by role', expr: `sum by (role) (agent_ready${sel})`, legend: '{{role}}', unit: 'none' },
    { title: 'MCP tool calls by outcome', expr: `sum by (server, tool, outcome) (rate(agent_tool_calls_total${sel}[5m]))`, legend: '{{server}}/{{tool}} {{outcome}}', unit: 'reqps' },
  ];
  return {
    title: `Agents: ${cluster}`,
    uid: `agents-${cluster}`.slice(0, 40),
    schemaVersion: 39,
    tags: ['agents', cluster],
    time: { from: 'now-6h', to: 'now' },
    refresh: '30s',
    panels: panels.map((p, i) => ({
      id: i + 1,
      type: 'timeseries',
      title: p.title,
      gridPos: { x: (i % 2) * 12, y: Math.floor(i / 2) * 8, w: 12, h: 8 },
      fieldConfig: { defaults: { unit: p.unit }, overrides: [] },
      targets: [{ refId: 'A', expr: p.expr, legendFormat: p.legend }],
    })),
  };
}
