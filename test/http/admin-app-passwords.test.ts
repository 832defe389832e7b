/** Admin API: app passwords — the secret is shown once, stored as SHA-256, expires, records lastUsedAt. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { configEvents, expectGqlError } from '../helpers/admin.js';

let server: TestServer;
let userId: string;
before(async () => {
  server = await startTestServer();
  userId = (await server.gql<{ createUser: { id: string } }>('mutation { createUser(input: { username: "svc-owner" }) { id } }')).createUser.id;
});
after(async () => {
  await server?.stop();
});

const CREATE = `mutation ($input: CreateAppPasswordInput!) {
  createAppPassword(input: $input) { secret appPassword { id description expiresAt lastUsedAt createdAt user { id username } } } }`;
const REVOKE = 'mutation ($id: ID!) { revokeAppPassword(id: $id) }';

interface Created { secret: string; appPassword: { id: string; description: string | null; expiresAt: string | null; lastUsedAt: string | null; user: { id: string; username: string } } }

async function create(input: Record<string, unknown>): Promise<Created> {
  return (await server.gql<{ createAppPassword: Created }>(CREATE, { input })).createAppPassword;
}

test('createAppPassword returns the secret once and stores only its SHA-256', async () => {
  const expiresAt = new Date(Date.now() + 86_400_000).toISOString();
  const created = await create({ userId, description: 'laptop', expiresAt });
  assert.ok(created.secret.length >= 32);
  assert.equal(created.appPassword.description, 'laptop');
  assert.equal(created.appPassword.expiresAt, expiresAt);
  assert.equal(created.appPassword.lastUsedAt, null);
  assert.equal(created.appPassword.user.username, 'svc-owner');
  const stored = await server.server.services.store.appPasswords.findOne({ id: created.appPassword.id });
  assert.equal(stored?.secretHash, createHash('sha256').update(created.secret).digest('hex'));
  assert.ok(!JSON.stringify(stored).includes(created.secret));
  const events = (await configEvents(server, 'createAppPassword')).filter((e) => e.context.id === created.appPassword.id);
  assert.equal(events.length, 1);
  assert.ok(!JSON.stringify(events).includes(created.secret));
});

test('User.appPasswords lists them; the secret is not a field', async () => {
  const created = await create({ userId, description: 'listed' });
  const data = await server.gql<{ user: { appPasswords: { id: string; description: string }[] } }>(
    'query ($id: ID) { user(id: $id) { appPasswords { id description } } }', { id: userId },
  );
  assert.ok(data.user.appPasswords.some((a) => a.id === created.appPassword.id && a.description === 'listed'));
  const { body } = await server.gqlRaw('query ($id: ID) { user(id: $id) { appPasswords { secret } } }', { id: userId });
  assert.equal(body.errors?.[0]?.extensions?.code, 'GRAPHQL_VALIDATION_FAILED');
});

test('an app password authenticates its user and records lastUsedAt', async () => {
  const admin = (await server.gql<{ createUser: { id: string } }>('mutation { createUser(input: { username: "ap-admin", isAdmin: true }) { id } }')).createUser.id;
  const created = await create({ userId: admin });
  const { status } = await server.gqlRaw('{ providers { id } }', undefined, created.secret);
  assert.equal(status, 200);
  let lastUsedAt: string | null = null;
  for (let i = 0; i < 20 && !lastUsedAt; i++) {
    await new Promise((r) => setTimeout(r, 25));
    const data = await server.gql<{ user: { appPasswords: { id: string; lastUsedAt: string | null }[] } }>('query ($id: ID) { user(id: $id) { appPasswords { id lastUsedAt } } }', { id: admin });
    lastUsedAt = data.user.appPasswords.find((a) => a.id === created.appPassword.id)?.lastUsedAt ?? null;
  }
  assert.ok(lastUsedAt && Date.now() - Date.parse(lastUsedAt) < 60_000);
});

test('an expiry in the past is BAD_USER_INPUT; a description over 500 characters too', async () => {
  await expectGqlError(server, CREATE, { input: { userId, expiresAt: new Date(Date.now() - 1000).toISOString() } }, 'BAD_USER_INPUT', 'expiresAt');
  await expectGqlError(server, CREATE, { input: { userId, description: 'd'.repeat(501) } }, 'BAD_USER_INPUT', 'description');
});

test('createAppPassword for a missing user is NOT_FOUND', async () => {
  await expectGqlError(server, CREATE, { input: { userId: 'missing' } }, 'NOT_FOUND');
});

test('revokeAppPassword deletes it: the secret stops working; revoking again is NOT_FOUND', async () => {
  const admin = (await server.gql<{ createUser: { id: string } }>('mutation { createUser(input: { username: "revoke-admin", isAdmin: true }) { id } }')).createUser.id;
  const created = await create({ userId: admin });
  assert.equal((await server.gqlRaw('{ providers { id } }', undefined, created.secret)).status, 200);
  assert.equal((await server.gql<{ revokeAppPassword: boolean }>(REVOKE, { id: created.appPassword.id })).revokeAppPassword, true);
  assert.equal((await server.gqlRaw('{ providers { id } }', undefined, created.secret)).status, 401);
  await expectGqlError(server, REVOKE, { id: created.appPassword.id }, 'NOT_FOUND');
  assert.equal((await configEvents(server, 'revokeAppPassword')).filter((e) => e.context.id === created.appPassword.id).length, 1);
});
