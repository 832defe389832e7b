/** Admin API: the audit log — newest first, filters, cursor pages. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { expectGqlError, type EventNode } from '../helpers/admin.js';

let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server?.stop();
});

const EVENTS = `query ($filter: EventFilter, $first: Int, $after: String) {
  events(filter: $filter, first: $first, after: $after) { pageInfo { hasNextPage endCursor } edges { cursor node { id action requestId clientId username context createdAt } } } }`;
interface EventsData { events: { pageInfo: { hasNextPage: boolean; endCursor: string | null }; edges: { cursor: string; node: EventNode }[] } }

async function seed(): Promise<void> {
  const events = server.server.services.events;
  for (let i = 0; i < 7; i++) {
    events.record({ action: i % 2 ? 'LOGIN' : 'LOGIN_FAILED', requestId: `req-${i}`, clientId: i < 3 ? 'client-a' : 'client-b', username: `user-${i % 3}`, context: { i } });
    await new Promise((r) => setTimeout(r, 2));
  }
}

test('events are newest first and a mutation\'s CONFIG_CHANGED event is visible at once', async () => {
  await seed();
  await server.gql('mutation { createUser(input: { username: "evented" }) { id } }');
  const data = await server.gql<EventsData>(EVENTS, { first: 500 });
  const nodes = data.events.edges.map((e) => e.node);
  assert.equal(nodes[0]!.action, 'CONFIG_CHANGED');
  assert.equal(nodes[0]!.context.operation, 'createUser');
  const times = nodes.map((n) => Date.parse(n.createdAt));
  assert.deepEqual(times, [...times].sort((a, b) => b - a));
});

test('events filter by requestId, action, clientId and username', async () => {
  const byRequest = await server.gql<EventsData>(EVENTS, { filter: { requestId: 'req-4' } });
  assert.deepEqual(byRequest.events.edges.map((e) => e.node.context.i), [4]);
  const byAction = await server.gql<EventsData>(EVENTS, { filter: { action: 'LOGIN' } });
  assert.deepEqual(byAction.events.edges.map((e) => e.node.context.i), [5, 3, 1]);
  const byClient = await server.gql<EventsData>(EVENTS, { filter: { clientId: 'client-a' } });
  assert.deepEqual(byClient.events.edges.map((e) => e.node.context.i), [2, 1, 0]);
  const combined = await server.gql<EventsData>(EVENTS, { filter: { clientId: 'client-b', username: 'user-0' } });
  assert.deepEqual(combined.events.edges.map((e) => e.node.context.i), [6, 3]);
  const none = await server.gql<EventsData>(EVENTS, { filter: { action: 'NO_SUCH_ACTION' } });
  assert.deepEqual(none.events.edges, []);
  assert.equal(none.events.pageInfo.hasNextPage, false);
  assert.equal(none.events.pageInfo.endCursor, null);
});

test('events pages follow endCursor without repeating or skipping', async () => {
  const all = (await server.gql<EventsData>(EVENTS, { filter: { action: 'LOGIN_FAILED' }, first: 500 })).events.edges.map((e) => e.node.id);
  const paged: string[] = [];
  let cursor: string | null = null;
  for (;;) {
    const page: EventsData = await server.gql<EventsData>(EVENTS, { filter: { action: 'LOGIN_FAILED' }, first: 3, after: cursor });
    paged.push(...page.events.edges.map((e) => e.node.id));
    if (!page.events.pageInfo.hasNextPage) break;
    cursor = page.events.pageInfo.endCursor;
  }
  assert.deepEqual(paged, all);
  assert.equal(all.length, 4);
});

test('events: first over 500 and foreign cursors are BAD_USER_INPUT', async () => {
  await expectGqlError(server, EVENTS, { first: 501 }, 'BAD_USER_INPUT', 'first');
  await expectGqlError(server, EVENTS, { after: '!!' }, 'BAD_USER_INPUT', 'after');
});
