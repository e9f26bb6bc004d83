import { AgentKind, AgentRoleSpec, SupervisedRoleSpec } from './agent-role';

/** The three coordination patterns. */
export enum TopologyKind {
  /** One coordinator calls every worker. */
  HUB_AND_SPOKE = 'hub-and-spoke',
  /** Every member may call every member. */
  MESH = 'mesh',
  /** A coordinator calls supervisors, each supervisor calls its workers. */
  HIERARCHICAL = 'hierarchical',
}

/** Roles of a hub-and-spoke topology. */
export interface HubAndSpokeProps {
  /** The hub: accepts jobs and fans them out. */
  readonly coordinator: AgentRoleSpec;
  /** The spokes: make the upstream calls. */
  readonly workers: AgentRoleSpec[];
}

/** Roles of a mesh topology. */
export interface MeshProps {
  /** The mesh members; each accepts jobs, spreads them and executes tasks. */
  readonly peers: AgentRoleSpec[];
  /** The member that accepts jobs from outside the cluster. @default - the first peer */
  readonly entry?: string;
}

/** Roles of a hierarchical topology. */
export interface HierarchicalProps {
  /** The top of the tree: accepts jobs and fans them out to supervisors. */
  readonly coordinator: AgentRoleSpec;
  /** The middle tier; each reports to the coordinator or to another supervisor. */
  readonly supervisors: SupervisedRoleSpec[];
  /** The leaves; each reports to a supervisor. */
  readonly workers: SupervisedRoleSpec[];
}

/** A role placed in a topology. */
export interface TopologyRole {
  /** The role as declared. */
  readonly spec: AgentRoleSpec;
  /** Its kind in this topology. */
  readonly kind: AgentKind;
  /** True for the role that accepts jobs from outside. */
  readonly entry: boolean;
}

/** A directed edge: `from` may call `to` on gRPC. */
export interface TopologyEdge {
  /** Caller role name. */
  readonly from: string;
  /** Callee role name. */
  readonly to: string;
}

/**
 * A value describing who calls whom. The user declares roles; `AgentCluster`
 * derives network policies, peer lists, priorities and autoscalers from it.
 */
export class Topology {
  /** One coordinator, many workers; the coordinator calls every worker. */
  public static hubAndSpoke(props: HubAndSpokeProps): Topology {
    const roles: TopologyRole[] = [
      { spec: props.coordinator, kind: AgentKind.COORDINATOR, entry: true },
      ...props.workers.map((w) => ({ spec: w, kind: AgentKind.WORKER, entry: false })),
    ];
    const edges = props.workers.map((w) => ({ from: props.coordinator.name, to: w.name }));
    const problems = props.workers.length === 0 ? ['workers is empty: a hub-and-spoke topology needs at least one worker'] : [];
    return new Topology(TopologyKind.HUB_AND_SPOKE, roles, edges, problems);
  }

  /**
   * Every peer may call every peer, replicas of its own role included. The
   * network rules are label-based, so their count grows linearly with peers.
   */
  public static mesh(props: MeshProps): Topology {
    const entry = props.entry ?? props.peers[0]?.name;
    const problems: string[] = [];
    if (props.peers.length === 0) problems.push('peers is empty: a mesh needs at least one peer');
    if (entry !== undefined && !props.peers.some((p) => p.name === entry)) {
      problems.push(`entry '${entry}' is not one of the peers: set entry to one of ${props.peers.map((p) => p.name).join(', ')}`);
    }
    const roles = props.peers.map((p) => ({ spec: p, kind: AgentKind.PEER, entry: p.name === entry }));
    // n² edges: described, not stored (see `edges`)
    return new Topology(TopologyKind.MESH, roles, undefined, problems);
  }

  /** A tree: coordinator → supervisors → workers, given by each role's `reportsTo`. */
  public static hierarchical(props: HierarchicalProps): Topology {
    const roles: TopologyRole[] = [
      { spec: props.coordinator, kind: AgentKind.COORDINATOR, entry: true },
      ...props.supervisors.map((s) => ({ spec: s, kind: AgentKind.SUPERVISOR, entry: false })),
      ...props.workers.map((w) => ({ spec: w, kind: AgentKind.WORKER, entry: false })),
    ];
    const below = [...props.supervisors, ...props.workers];
    const edges = below.map((r) => ({ from: r.reportsTo, to: r.name }));
    return new Topology(TopologyKind.HIERARCHICAL, roles, edges, hierarchyProblems(props));
  }

  /** @internal */
  public readonly _problems: string[];

  // Built once: a mesh of n roles has n² edges, so per-role scans of the
  // edge list would make synth cubic. In a mesh every role's callees and
  // callers are one shared array of all names: O(n), not O(n²).
  private index?: { out: Map<string, readonly string[]>; in: Map<string, readonly string[]>; byName: Map<string, TopologyRole> };
  private edgeList?: TopologyEdge[];

  private constructor(
    /** Which pattern this is. */
    public readonly kind: TopologyKind,
    /** Every role, the entry role first. */
    public readonly roles: TopologyRole[],
    edges: TopologyEdge[] | undefined,
    problems: string[],
  ) {
    this.edgeList = edges;
    const seen = new Set<string>();
    const all = [...problems];
    for (const r of roles) {
      if (seen.has(r.spec.name)) all.push(`role name '${r.spec.name}' is used twice: role names must be unique`);
      seen.add(r.spec.name);
    }
    this._problems = all;
  }

  /**
   * Every caller → callee edge. A mesh of n roles has n² of them; they are
   * listed only when asked for (synthesis never needs the list).
   */
  public get edges(): TopologyEdge[] {
    if (!this.edgeList) {
      const names = this.roles.map((r) => r.spec.name);
      this.edgeList = names.flatMap((from) => names.map((to) => ({ from, to })));
    }
    return this.edgeList;
  }

  /** Names of the roles `role` calls. */
  public calleesOf(role: string): string[] {
    return [...this._callees(role)];
  }

  /**
   * Like calleesOf, without the copy: roles with the same callees (all of a
   * mesh) share one array, which callers may use as a cache key.
   * @internal
   */
  public _callees(role: string): readonly string[] {
    return this.adjacency().out.get(role) ?? [];
  }

  /** Names of the roles that call `role`. */
  public callersOf(role: string): string[] {
    return [...(this.adjacency().in.get(role) ?? [])];
  }

  /** The role of a name. */
  public roleNamed(name: string): TopologyRole | undefined {
    return this.adjacency().byName.get(name);
  }

  private adjacency() {
    if (!this.index && this.kind === TopologyKind.MESH) {
      const names: readonly string[] = this.roles.map((r) => r.spec.name);
      const all = new Map(names.map((n) => [n, names]));
      this.index = { out: all, in: all, byName: new Map(this.roles.map((r) => [r.spec.name, r])) };
    }
    if (!this.index) {
      const out = new Map<string, string[]>();
      const inn = new Map<string, string[]>();
      for (const e of this.edges) {
        (out.get(e.from) ?? out.set(e.from, []).get(e.from)!).push(e.to);
        (inn.get(e.to) ?? inn.set(e.to, []).get(e.to)!).push(e.from);
      }
      this.index = { out, in: inn, byName: new Map(this.roles.map((r) => [r.spec.name, r])) };
    }
    return this.index;
  }
}

/** Cycles, orphans and dangling `reportsTo` in a hierarchy, one sentence each. */
function hierarchyProblems(props: HierarchicalProps): string[] {
  const out: string[] = [];
  const top = props.coordinator.name;
  const supervisors = new Set(props.supervisors.map((s) => s.name));
  const parent = new Map<string, string>();
  for (const r of [...props.supervisors, ...props.workers]) parent.set(r.name, r.reportsTo);

  for (const w of props.workers) {
    if (!supervisors.has(w.reportsTo)) {
      out.push(`worker '${w.name}' reports to '${w.reportsTo}', which is not a supervisor: set reportsTo to one of ${[...supervisors].join(', ') || '(none: add a supervisor)'}`);
    }
  }
  for (const s of props.supervisors) {
    if (s.reportsTo !== top && !supervisors.has(s.reportsTo)) {
      out.push(`supervisor '${s.name}' reports to '${s.reportsTo}', which does not exist: set reportsTo to '${top}' or another supervisor`);
      continue;
    }
    // Walk up; a walk that revisits a role is a cycle and never reaches the top.
    const path = [s.name];
    let at = s.reportsTo;
    while (at !== top && parent.has(at) && !path.includes(at)) {
      path.push(at);
      at = parent.get(at)!;
    }
    if (path.includes(at)) {
      out.push(`supervisors form a cycle (${[...path, at].join(' → ')}): a hierarchy is a tree; make one of them report to '${top}'`);
    }
    if (!props.workers.some((w) => w.reportsTo === s.name) && !props.supervisors.some((o) => o.reportsTo === s.name)) {
      out.push(`supervisor '${s.name}' has no workers (orphan): give it a worker with reportsTo '${s.name}' or remove it`);
    }
  }
  if (props.workers.length === 0) out.push('workers is empty: a hierarchy needs at least one worker');
  // Report each cycle once.
  return [...new Set(out)];
}
