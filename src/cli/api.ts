/** The admin GraphQL API as the CLI uses it: one POST per operation, errors as CliError. */
import type { ConfigDocument, ConfigPlan } from '../domain/config-document/index.js';

export class CliError extends Error {}

const PLAN_FIELDS = 'changes { action kind name before after } secrets { kind name secret }';

interface GraphQLAnswer<T> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

export class AdminApi {
  constructor(private readonly url: string, private readonly token: string) {}

  private async call<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    let response: Response;
    try {
      response = await fetch(new URL('/graphql', this.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.token}` },
        body: JSON.stringify({ query, variables }),
      });
    } catch (error) {
      throw new CliError(`cannot reach ${this.url}: ${(error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message}`);
    }
    let body: GraphQLAnswer<T>;
    try {
      body = (await response.json()) as GraphQLAnswer<T>;
    } catch {
      throw new CliError(`${this.url} answered HTTP ${response.status} without a GraphQL response: is it a Tessera server?`);
    }
    const error = body.errors?.[0];
    if (error) throw new CliError(`${error.extensions?.code ?? 'ERROR'}: ${error.message}`);
    if (!body.data) throw new CliError(`${this.url} answered HTTP ${response.status} without data`);
    return body.data;
  }

  async export(): Promise<ConfigDocument> {
    return (await this.call<{ exportConfig: ConfigDocument }>('query { exportConfig }')).exportConfig;
  }

  async plan(document: unknown, prune: boolean): Promise<ConfigPlan> {
    const q = `query($document: JSON!, $prune: Boolean) { planConfig(document: $document, prune: $prune) { ${PLAN_FIELDS} } }`;
    return (await this.call<{ planConfig: ConfigPlan }>(q, { document, prune })).planConfig;
  }

  async apply(document: unknown, prune: boolean): Promise<ConfigPlan> {
    const q = `mutation($document: JSON!, $prune: Boolean) { applyConfig(document: $document, prune: $prune) { ${PLAN_FIELDS} } }`;
    return (await this.call<{ applyConfig: ConfigPlan }>(q, { document, prune })).applyConfig;
  }
}
