// Internal state shared between constructs; not exported from index.ts.

/**
 * Props objects whose agentConfigJson AgentCluster rendered itself: their
 * JSON is known to be valid, so AgentDeployment skips re-parsing it (in a
 * 1,000-role mesh that re-parse was half of synth time).
 */
export const renderedConfigProps = new WeakSet<object>();
