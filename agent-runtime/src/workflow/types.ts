import { ChatMessage } from '../types';

/** How much of the earlier steps a step's request carries. */
export type StepContext = 'isolated' | 'chain';

/** One step of a workflow, checked and with its defaults applied. */
export interface WorkflowStep {
  readonly id: string;
  /** Position in the request: results come back in this order. */
  readonly index: number;
  /** Target role; absent: any role serving the model. */
  readonly role?: string;
  /** The step's own messages, templates not yet resolved (a prompt becomes one user message). */
  readonly messages: readonly ChatMessage[];
  readonly dependsOn: readonly string[];
  readonly model?: string;
  readonly maxTokens?: number;
  /** The step this one judges (it is in dependsOn). */
  readonly validates?: string;
  /** Runs of the validated step at most (validators only). */
  readonly maxRounds: number;
  readonly context: StepContext;
}

/** A checked `steps` job: run by runWorkflow. */
export interface Workflow {
  readonly input: Readonly<Record<string, string>>;
  readonly steps: readonly WorkflowStep[];
}
