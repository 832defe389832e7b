/**
 * The users connection over HTTP while users come and go: pages stay in (createdAt, id) order
 * with none twice and none skipped (also among users created in one millisecond), and totalCount
 * follows every change made through the admin API at once (no store may answer a count from a
 * cache that a write left stale).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startTestServer, type TestServer } from '../helpers/server.js';
import type { User } from '../../src/domain/model.js';

let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server?.stop();
});

const USERS = `query ($filter: UserFilter, $first: Int, $after: String) {
  users(filter: $filter, first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id username type createdAt } } } }`;
const CREATE = 'mutation ($input: CreateUserInput!) { createUser(input: $input) { id } }';
const CREATE_SA = 'mutation ($input: CreateServiceAccountInput!) { createServiceAccount(input: $input) { id } }';
const UPDATE = 'mutation ($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) { id } }';
const DELETE = 'mutation ($id: ID!) { deleteUser(id: $id) }';

interface UsersData {
  users: { totalCount: number; pageInfo: { hasNextPage: boolean; endCursor: string | null }; edges: { node: { id: string; username: string; type: string; createdAt: string } }[] };
}

type Filter = { type?: string; search?: string } | null;

async function page(filter: Filter, first: number, after: string | null = null): Promise<UsersData['users']> {
  return (await server.gql<UsersData>(USERS, { filter, first, after })).users;
}

async function pageAll(filter: Filter, first: number): Promise<string[]> {
  const ids: string[] = [];
  let after: string | null = null;
  for (let guard = 0; guard < 500; guard++) {
    const current = await page(filter, first, after);
    ids.push(...current.edges.map((edge) => edge.node.id));
    if (!current.pageInfo.hasNextPage) return ids;
    after = current.pageInfo.endCursor;
  }
  throw new Error('paging did not end');
}

/** What the store holds, in page order (newest first, then id descending), as a plain scan says. */
async function expected(keep: (user: User) => boolean = () => true): Promise<string[]> {
  const all = await server.server.services.store.users.find({});
  return all.filter(keep)
    .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
    .map((user) => user.id);
}

test('users pages visit every user once in (createdAt, id) order, also users created in the same millisecond', async () => {
  for (let i = 0; i < 12; i++) await server.gql(CREATE, { input: { username: `paging-${i}`, name: `Paging ${i}` } });
  // Tied createdAt: written to the store directly, as several processes could.
  const at = new Date(Date.now() - 5_000);
  for (let i = 0; i < 7; i++) {
    await server.server.services.store.users.insert({
      id: randomUUID(), username: `tied-${i}`, name: `Tied ${i}`, email: null, type: i % 2 ? 'SERVICE_ACCOUNT' : 'INTERNAL',
      isActive: true, isAdmin: false, attributes: {}, passwordHash: null, expiresAt: null, createdAt: at, updatedAt: at,
    });
  }
  const all = await expected();
  for (const first of [1, 2, 3, 5, 50]) assert.deepEqual(await pageAll(null, first), all, `first: ${first}`);
  const accounts = await expected((user) => user.type === 'SERVICE_ACCOUNT');
  for (const first of [1, 2, 4]) assert.deepEqual(await pageAll({ type: 'SERVICE_ACCOUNT' }, first), accounts, `SERVICE_ACCOUNT, first: ${first}`);
  const tied = await expected((user) => user.username.startsWith('tied-'));
  for (const first of [1, 3]) assert.deepEqual(await pageAll({ search: 'TIED' }, first), tied, `search, first: ${first}`);
});

test('totalCount follows each create, update and delete made through the admin API at once', async () => {
  const count = async (filter: Filter) => (await page(filter, 1)).totalCount;
  const total = await count(null);
  assert.equal(total, (await expected()).length);
  assert.equal(await count(null), total, 'asked again: the same');

  const { createUser } = await server.gql<{ createUser: { id: string } }>(CREATE, { input: { username: 'count-me', name: 'Count Me' } });
  assert.equal(await count(null), total + 1, 'after createUser');
  assert.equal(await count({ search: 'count me' }), 1, 'a search sees the new name');

  await server.gql(UPDATE, { id: createUser.id, input: { name: 'Renamed' } });
  assert.equal(await count({ search: 'count me' }), 0, 'after updateUser, the old name is not found');
  assert.equal(await count({ search: 'renamed' }), 1, 'after updateUser, the new name is');

  const accounts = await count({ type: 'SERVICE_ACCOUNT' });
  const { createServiceAccount } = await server.gql<{ createServiceAccount: { id: string } }>(CREATE_SA, { input: { username: 'count-robot' } });
  assert.equal(await count({ type: 'SERVICE_ACCOUNT' }), accounts + 1, 'after createServiceAccount');

  await server.gql(DELETE, { id: createUser.id });
  await server.gql(DELETE, { id: createServiceAccount.id });
  assert.equal(await count(null), total, 'after deleteUser');
  assert.equal(await count({ type: 'SERVICE_ACCOUNT' }), accounts, 'typed, after deleteUser');
});

test('an expired service account leaves totalCount and the pages when it expires, with no write in between', async () => {
  // first: 1, so the total is counted (a page holding every match tells it for free).
  const count = async () => (await page({ type: 'SERVICE_ACCOUNT' }, 1)).totalCount;
  const before = await count();
  const expiresAt = new Date(Date.now() + 1_500).toISOString();
  const { createServiceAccount } = await server.gql<{ createServiceAccount: { id: string } }>(CREATE_SA, { input: { username: 'short-lived', expiresAt } });
  assert.equal(await count(), before + 1);
  await new Promise((resolve) => setTimeout(resolve, 1_700));
  assert.equal(await count(), before, 'no longer counted');
  const after = await page({ type: 'SERVICE_ACCOUNT' }, 50);
  assert.equal(after.totalCount, before, 'nor in a page holding every match');
  assert.ok(!after.edges.some((edge) => edge.node.id === createServiceAccount.id), 'no longer listed');
});
