/**
 * Configuration as code (contract: "Configuration as code"): export the server's configuration as
 * one document, plan what a document would change, apply it. Free of GraphQL: the admin resolver
 * only maps these results to its types.
 */
import type { Services } from '../services.js';
import { readDocument } from './validate.js';
import { plan, type ConfigChange } from './plan.js';
import { readState, stateToDocument, type ServerState } from './state.js';
import { applySteps, type Actor, type ConfigSecret } from './apply.js';
import type { ConfigDocument } from './schema.js';

export type { ConfigChange, ConfigChangeAction, ConfigKind } from './plan.js';
export type { ConfigSecret, Actor } from './apply.js';
export type { ConfigDocument } from './schema.js';
export { configJsonSchema } from './schema.js';

export interface ConfigPlan {
  changes: ConfigChange[];
  secrets: ConfigSecret[];
}

export interface PlanOptions {
  prune: boolean;
  /** The admin applying: prune never deletes it or its app passwords. */
  callerId: string | null;
}

export class ConfigService {
  constructor(private readonly services: Services) {}

  async export(): Promise<ConfigDocument> {
    return stateToDocument(await readState(this.services));
  }

  async plan(document: unknown, options: PlanOptions): Promise<ConfigPlan> {
    const { steps } = await this.prepare(document, options);
    return { changes: steps.map((s) => s.change), secrets: [] };
  }

  /** All or nothing: the whole document is checked before the first write; a failing write rolls back the earlier ones. */
  async apply(document: unknown, options: PlanOptions, actor: Actor): Promise<ConfigPlan> {
    const { steps, state, desired } = await this.prepare(document, options);
    const secrets = await applySteps(this.services, state, desired, steps, actor);
    return { changes: steps.map((s) => s.change), secrets };
  }

  private async prepare(document: unknown, options: PlanOptions): Promise<{ steps: ReturnType<typeof plan>; state: ServerState; desired: ConfigDocument }> {
    const desired = readDocument(document, this.services.policies);
    const usernames = [...desired.users, ...desired.serviceAccounts].map((u) => u.username);
    const [state, generated] = await Promise.all([
      readState(this.services),
      usernames.length === 0 ? [] : this.services.store.users.find({ username: { $in: usernames }, type: 'GENERATED_SERVICE_ACCOUNT' }),
    ]);
    const steps = plan({ desired, state, prune: options.prune, callerId: options.callerId, generatedUsernames: new Set(generated.map((u) => u.username)) });
    return { steps, state, desired };
  }
}
