/** Small helpers for the admin API tests: expecting a GraphQL error code, reading events. */
import assert from 'node:assert/strict';
import type { TestServer } from './server.js';

/** Runs an operation that must fail with `code` (and, when given, name `field`); returns the error message. */
export async function expectGqlError(
  server: TestServer, query: string, variables: Record<string, unknown> | undefined, code: string, field?: string,
): Promise<string> {
  const { status, body } = await server.gqlRaw(query, variables);
  const error = body.errors?.[0];
  assert.ok(error, `expected a ${code} error, got ${JSON.stringify(body)}`);
  assert.equal(error.extensions?.code, code, `expected ${code}, got ${JSON.stringify(body.errors)}`);
  if (field !== undefined) assert.equal(error.extensions?.field, field, `expected the error to name ${field}: ${JSON.stringify(error)}`);
  if (field !== undefined && code === 'BAD_USER_INPUT') assert.ok(error.message.includes(field), `the message names the field ${field}: ${error.message}`);
  assert.doesNotMatch(JSON.stringify(body), /\bat [\w.<>]+ \(|node_modules|Error: /, 'no stack trace or driver error in the response');
  assert.ok(status < 500, `a ${code} error is not a server error (HTTP ${status})`);
  return error.message;
}

export interface EventNode {
  id: string;
  action: string;
  requestId: string | null;
  clientId: string | null;
  username: string | null;
  context: Record<string, unknown>;
  createdAt: string;
}

export async function configEvents(server: TestServer, operation?: string): Promise<EventNode[]> {
  const data = await server.gql<{ events: { edges: { node: EventNode }[] } }>(
    `query { events(filter: { action: "CONFIG_CHANGED" }, first: 500) { edges { node { id action requestId clientId username context createdAt } } } }`,
  );
  const nodes = data.events.edges.map((e) => e.node);
  return operation ? nodes.filter((n) => n.context.operation === operation) : nodes;
}
