export * from './model-catalog';
export * from './agent-role';
export * from './topology';
export * from './agent-namespace';
export * from './agent-deployment';
export * from './agent-autoscaler';
export * from './priority-class';
export * from './agent-cluster';
