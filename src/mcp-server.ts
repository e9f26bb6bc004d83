import { isIP } from 'node:net';
import { k8s } from 'cdk8s-plus-28';
import { cidrContains, cidrProblem } from './cidr';
import { McpServerEntry } from './contract';
import { isDnsLabel } from './labels';

/** What every MCP server of a role has, wherever it runs. */
export interface McpServerOptions {
  /** Server name (DNS label), unique in the role; the model sees its tools as `<name>__<tool>`. */
  readonly name: string;
  /** Streamable HTTP endpoint, e.g. `http://docs-mcp.agents-tools.svc.cluster.local:8000/mcp`; never with credentials in it. */
  readonly url: string;
  /** Only these tools of the server are offered to the model. @default - every tool the server lists */
  readonly allowedTools?: string[];
  /** Name of an existing Secret holding a bearer token for this server (only referenced, never read). @default - no Authorization header */
  readonly bearerTokenSecretName?: string;
  /** Key inside that Secret. @default 'token' */
  readonly bearerTokenSecretKey?: string;
}

/** An MCP server running in the Kubernetes cluster, reached through its Service. */
export interface InClusterMcpServerOptions extends McpServerOptions {
  /** Namespace of the server's pods; the URL's host must be a Service in it. @default - the agent cluster's namespace */
  readonly namespace?: string;
  /** Labels of the server's pods: egress is opened to exactly these pods. */
  readonly podLabels: { [key: string]: string };
  /** The port the server's pods listen on (the Service's target port, which NetworkPolicies match). */
  readonly port: number;
}

/** An MCP server outside the cluster, reached over HTTPS. */
export interface ExternalMcpServerOptions extends McpServerOptions {
  /** The addresses the server's host resolves to, as one CIDR block: egress is opened to it. */
  readonly cidr: string;
  /** TCP port. @default - the URL's port, else 443 */
  readonly port?: number;
}

type Problem = [field: string, problem: string, fix: string];

/** A Service name (`x.ns.svc`, `x.ns.svc.cluster.local`): in the cluster, not outside it. */
const CLUSTER_HOST = /(\.svc|\.cluster\.local)$/;

/**
 * An MCP (Model Context Protocol) tool server a role may call over Streamable
 * HTTP. Where it runs decides how egress is opened: `inCluster` by namespace
 * and pod selector, `external` by CIDR block and port.
 */
export class McpServer {
  /** A server in the cluster: egress to the pods `podLabels` selects in `namespace`, on `port`. */
  public static inCluster(options: InClusterMcpServerOptions): McpServer {
    return new McpServer(options, true);
  }

  /** A server outside the cluster: egress to `cidr` on `port`; its URL must be https. */
  public static external(options: ExternalMcpServerOptions): McpServer {
    return new McpServer(options, false);
  }

  /** Server name. */
  public readonly name: string;
  /** Streamable HTTP endpoint. */
  public readonly url: string;
  /** True for a server in the cluster. */
  public readonly isInCluster: boolean;
  /** Environment variable that carries the bearer token, when the server has one (`MCP_<NAME>_TOKEN`). */
  public readonly bearerTokenEnv?: string;
  private readonly options: McpServerOptions & Partial<InClusterMcpServerOptions> & Partial<ExternalMcpServerOptions>;

  private constructor(options: InClusterMcpServerOptions | ExternalMcpServerOptions, inCluster: boolean) {
    // a copy, so changing the caller's object later changes nothing here
    this.options = { ...options, allowedTools: options.allowedTools ? [...options.allowedTools] : undefined };
    if ('podLabels' in options) this.options = { ...this.options, podLabels: { ...options.podLabels } };
    this.name = options.name;
    this.url = options.url;
    this.isInCluster = inCluster;
    if (options.bearerTokenSecretName !== undefined) this.bearerTokenEnv = `MCP_${options.name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_TOKEN`;
  }

  /**
   * The server's entry in the role's config.
   * @internal
   */
  public _entry(): McpServerEntry {
    return {
      name: this.name,
      url: this.url,
      ...(this.bearerTokenEnv ? { bearerTokenEnv: this.bearerTokenEnv } : {}),
      ...(this.options.allowedTools ? { allowedTools: [...this.options.allowedTools] } : {}),
    };
  }

  /**
   * The container env var with the bearer token, from its Secret.
   * @internal
   */
  public _tokenEnv(): k8s.EnvVar | undefined {
    if (!this.bearerTokenEnv) return undefined;
    return { name: this.bearerTokenEnv, valueFrom: { secretKeyRef: { name: this.options.bearerTokenSecretName!, key: this.options.bearerTokenSecretKey ?? 'token' } } };
  }

  /**
   * The one NetworkPolicy egress rule that lets a role reach this server.
   * @internal
   */
  public _egressRule(clusterNamespace: string): k8s.NetworkPolicyEgressRule {
    const o = this.options;
    if (this.isInCluster) {
      return {
        to: [
          {
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': o.namespace ?? clusterNamespace } },
            podSelector: { matchLabels: { ...o.podLabels } },
          },
        ],
        ports: [{ protocol: 'TCP', port: k8s.IntOrString.fromNumber(o.port!) }],
      };
    }
    return { to: [{ ipBlock: { cidr: o.cidr! } }], ports: [{ protocol: 'TCP', port: k8s.IntOrString.fromNumber(this.externalPort()) }] };
  }

  /**
   * What is wrong with this server's settings, field by field (fields relative to the server).
   * @internal
   */
  public _problems(clusterNamespace: string): Problem[] {
    const o = this.options;
    const out: Problem[] = [];
    if (!isDnsLabel(o.name)) out.push(['name', `'${o.name}' is not a DNS label`, 'use lower-case letters, digits and dashes, at most 63 characters']);
    const url = this.parsedUrl(out);
    if (url && this.isInCluster) {
      const ns = o.namespace ?? clusterNamespace;
      if (o.namespace !== undefined && !isDnsLabel(o.namespace)) out.push(['namespace', `'${o.namespace}' is not a namespace name`, 'use a DNS label']);
      const labels = url.hostname.split('.');
      if (isIP(url.hostname.replace(/^\[|\]$/g, '')) !== 0) {
        out.push(['url', `host ${url.hostname} is an IP address; pod and Service IPs change`, `use the Service's DNS name, e.g. http://<service>.${ns}.svc.cluster.local:<port>/mcp`]);
      } else if (labels.length >= 3 && labels[2] !== 'svc') {
        out.push(['url', `host '${url.hostname}' is not a Service name (<service>.<namespace>.svc...)`, `use http://<service>.${ns}.svc.cluster.local:<port>/mcp, or McpServer.external for a server outside the cluster`]);
      } else {
        const hostNs = labels.length >= 2 ? labels[1] : clusterNamespace;
        if (hostNs !== ns) {
          out.push(['url', `host '${url.hostname}' is in namespace '${hostNs}' but the server's namespace is '${ns}'`, `set namespace: '${hostNs}' or correct the URL's host`]);
        }
      }
      if (Object.keys(o.podLabels ?? {}).length === 0) {
        out.push(['podLabels', `is empty, which would open egress to every pod in namespace '${ns}'`, "give the labels of the server's pods, e.g. { 'app.kubernetes.io/name': 'docs-mcp' }"]);
      }
      out.push(...portProblems('port', o.port));
    }
    if (url && !this.isInCluster) {
      const cidr = cidrProblem(o.cidr ?? '');
      if (cidr) out.push(['cidr', cidr, "write the server's address range, e.g. '203.0.113.0/24' or '203.0.113.7/32'"]);
      if (CLUSTER_HOST.test(url.hostname)) {
        out.push(['url', `host '${url.hostname}' is a cluster Service, not an external server`, 'use McpServer.inCluster with its namespace, pod labels and port']);
      } else if (url.protocol === 'http:') {
        out.push(['url', `'${o.url}' is http:// to a host outside the cluster, so tool calls and results would cross the network in clear text`, 'use https://']);
      }
      const ip = url.hostname.replace(/^\[|\]$/g, '');
      if (!cidr && isIP(ip) !== 0 && !cidrContains(o.cidr!, ip)) {
        out.push(['cidr', `${o.cidr} does not contain the URL's address ${ip}`, `use a block that contains ${ip}, e.g. '${ip}/${isIP(ip) === 4 ? 32 : 128}'`]);
      }
      out.push(...portProblems('port', this.externalPort()));
      if (o.port !== undefined && url.port !== '' && Number(url.port) !== o.port) {
        out.push(['port', `${o.port} differs from the URL's port ${url.port}, so egress would be opened to a port the role never calls`, `set port: ${url.port} or change the URL`]);
      }
    }
    const tools = o.allowedTools ?? [];
    const seen = new Set<string>();
    for (const [i, t] of tools.entries()) {
      if (t.length === 0) out.push([`allowedTools[${i}]`, 'is empty', 'name a tool the server lists']);
      else if (seen.has(t)) out.push([`allowedTools[${i}]`, `'${t}' is listed twice`, 'list each tool once']);
      seen.add(t);
    }
    if (o.bearerTokenSecretName !== undefined && !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(o.bearerTokenSecretName)) {
      out.push(['bearerTokenSecretName', `'${o.bearerTokenSecretName}' is not a Secret name`, 'use lower-case letters, digits, dashes and dots']);
    }
    if (o.bearerTokenSecretKey !== undefined && !/^[-._a-zA-Z0-9]{1,253}$/.test(o.bearerTokenSecretKey)) {
      out.push(['bearerTokenSecretKey', `'${o.bearerTokenSecretKey}' is not a Secret key`, 'use letters, digits, dashes, dots and underscores']);
    }
    return out;
  }

  private externalPort(): number {
    if (this.options.port !== undefined) return this.options.port;
    try {
      const u = new URL(this.url);
      return u.port !== '' ? Number(u.port) : u.protocol === 'http:' ? 80 : 443;
    } catch {
      return 443;
    }
  }

  private parsedUrl(out: Problem[]): URL | undefined {
    const fix = 'write an http(s) URL such as https://tools.example.com/mcp';
    // The config schema's pattern: the runtime refuses anything else.
    if (!/^https?:\/\/[^\s]+$/.test(this.url)) {
      out.push(['url', `'${redacted(this.url)}' is not an http:// or https:// URL`, fix]);
      return undefined;
    }
    let url: URL;
    try {
      url = new URL(this.url);
    } catch {
      out.push(['url', `'${redacted(this.url)}' is not a URL`, fix]);
      return undefined;
    }
    if (url.username !== '' || url.password !== '') {
      out.push(['url', 'carries credentials (user:password@), which would land in the ConfigMap in clear text', 'remove them from the URL and reference a Secret with bearerTokenSecretName']);
      return undefined;
    }
    return url;
  }
}

function portProblems(field: string, port: number | undefined): Problem[] {
  if (port === undefined || !Number.isInteger(port) || port < 1 || port > 65535) return [[field, `${port} is not a TCP port`, 'use a whole number from 1 to 65535']];
  return [];
}

/** The URL with any user:password@ masked, so an error line never prints a credential. */
function redacted(url: string): string {
  return url.replace(/\/\/[^/@\s]*@/, '//***@');
}
