/** Admin API: users, service accounts, generated service accounts, and the users connection. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { clientIdentityKey } from '../../src/domain/federation/service-accounts.js';
import { configEvents, expectGqlError } from '../helpers/admin.js';

let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server?.stop();
});

const USER_FIELDS = 'id username name email type isActive isAdmin attributes expiresAt createdAt appPasswords { id }';
const CREATE = `mutation ($input: CreateUserInput!) { createUser(input: $input) { ${USER_FIELDS} } }`;
const UPDATE = `mutation ($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) { ${USER_FIELDS} } }`;
const CREATE_SA = `mutation ($input: CreateServiceAccountInput!) { createServiceAccount(input: $input) { ${USER_FIELDS} } }`;
const USERS = `query ($filter: UserFilter, $first: Int, $after: String) {
  users(filter: $filter, first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id username type } } } }`;

interface UserData { id: string; username: string; name: string | null; email: string | null; type: string; isActive: boolean; isAdmin: boolean; attributes: Record<string, unknown>; expiresAt: string | null; appPasswords: { id: string }[] }
interface UsersData { users: { totalCount: number; pageInfo: { hasNextPage: boolean; endCursor: string | null }; edges: { cursor: string; node: { id: string; username: string; type: string } }[] } }

async function createUser(input: Record<string, unknown>): Promise<UserData> {
  return (await server.gql<{ createUser: UserData }>(CREATE, { input })).createUser;
}

test('createUser makes an INTERNAL user; the password is stored as an argon2id hash, never returned', async () => {
  const user = await createUser({ username: 'alice', name: 'Alice', email: 'alice@example.com', password: 'correct horse battery', attributes: { team: 'ops', level: 3 } });
  assert.equal(user.type, 'INTERNAL');
  assert.equal(user.isActive, true);
  assert.equal(user.isAdmin, false);
  assert.deepEqual(user.attributes, { team: 'ops', level: 3 });
  assert.equal(user.expiresAt, null);
  const stored = await server.server.services.store.users.findOne({ id: user.id });
  assert.match(stored?.passwordHash ?? '', /^\$argon2id\$/);
  assert.equal(await server.server.services.users.verifyPassword('alice', 'correct horse battery').then((u) => u?.id), user.id);
});

test('createUser may make an EXTERNAL user, but not a service account', async () => {
  const user = await createUser({ username: 'ext-bob', type: 'EXTERNAL' });
  assert.equal(user.type, 'EXTERNAL');
  await expectGqlError(server, CREATE, { input: { username: 'sa-nope', type: 'SERVICE_ACCOUNT' } }, 'BAD_USER_INPUT', 'type');
  await expectGqlError(server, CREATE, { input: { username: 'gsa-nope', type: 'GENERATED_SERVICE_ACCOUNT' } }, 'BAD_USER_INPUT', 'type');
});

test('a duplicate username is CONFLICT', async () => {
  await createUser({ username: 'carol' });
  await expectGqlError(server, CREATE, { input: { username: 'carol' } }, 'CONFLICT', 'username');
});

test('user input validation: username, email, password length, attributes a JSON object', async () => {
  await expectGqlError(server, CREATE, { input: { username: 'has space' } }, 'BAD_USER_INPUT', 'username');
  await expectGqlError(server, CREATE, { input: { username: '' } }, 'BAD_USER_INPUT', 'username');
  await expectGqlError(server, CREATE, { input: { username: 'bad-email', email: 'not-an-email' } }, 'BAD_USER_INPUT', 'email');
  await expectGqlError(server, CREATE, { input: { username: 'short-pw', password: 'short' } }, 'BAD_USER_INPUT', 'password');
  await expectGqlError(server, CREATE, { input: { username: 'attr-array', attributes: [1, 2] } }, 'BAD_USER_INPUT', 'attributes');
  await expectGqlError(server, CREATE, { input: { username: 'attr-string', attributes: 'x' } }, 'BAD_USER_INPUT', 'attributes');
  await expectGqlError(server, CREATE, { input: { username: 'long-name', name: 'n'.repeat(201) } }, 'BAD_USER_INPUT', 'name');
});

test('updateUser changes fields; attributes keep keys no store accepts raw ("$ne", "a.b")', async () => {
  const user = await createUser({ username: 'dave', name: 'Dave' });
  const updated = (await server.gql<{ updateUser: UserData }>(UPDATE, {
    id: user.id, input: { name: 'David', email: 'd@example.com', isAdmin: true, attributes: { '$ne': 1, 'kubernetes.io': { ns: 'x' } } },
  })).updateUser;
  assert.equal(updated.name, 'David');
  assert.equal(updated.email, 'd@example.com');
  assert.equal(updated.isAdmin, true);
  assert.deepEqual(updated.attributes, { '$ne': 1, 'kubernetes.io': { ns: 'x' } });
  const deactivated = (await server.gql<{ updateUser: UserData }>(UPDATE, { id: user.id, input: { isActive: false } })).updateUser;
  assert.equal(deactivated.isActive, false);
  assert.equal(deactivated.name, 'David');
  await expectGqlError(server, UPDATE, { id: user.id, input: { email: 'nope' } }, 'BAD_USER_INPUT', 'email');
  await expectGqlError(server, UPDATE, { id: user.id, input: { attributes: 5 } }, 'BAD_USER_INPUT', 'attributes');
  await expectGqlError(server, UPDATE, { id: 'missing', input: { name: 'x' } }, 'NOT_FOUND');
});

test('setUserPassword sets an argon2id password; too short is BAD_USER_INPUT; a missing user is NOT_FOUND', async () => {
  const user = await createUser({ username: 'erin' });
  const SET = 'mutation ($id: ID!, $pw: String!) { setUserPassword(id: $id, password: $pw) }';
  assert.equal((await server.gql<{ setUserPassword: boolean }>(SET, { id: user.id, pw: 'a long enough password' })).setUserPassword, true);
  assert.equal((await server.server.services.users.verifyPassword('erin', 'a long enough password'))?.id, user.id);
  await expectGqlError(server, SET, { id: user.id, pw: 'short' }, 'BAD_USER_INPUT', 'password');
  await expectGqlError(server, SET, { id: 'missing', pw: 'a long enough password' }, 'NOT_FOUND');
  const events = await configEvents(server, 'setUserPassword');
  assert.ok(!JSON.stringify(events).includes('a long enough password'));
});

test('user(id|username) finds a user; a missing one is null', async () => {
  const user = await createUser({ username: 'frank' });
  const data = await server.gql<{ a: { username: string }; b: { id: string }; c: null; d: null }>(
    'query ($id: ID) { a: user(id: $id) { username } b: user(username: "frank") { id } c: user(username: "nobody") { id } d: user(id: "missing") { id } }',
    { id: user.id },
  );
  assert.equal(data.a.username, 'frank');
  assert.equal(data.b.id, user.id);
  assert.equal(data.c, null);
  assert.equal(data.d, null);
});

test('createServiceAccount makes a SERVICE_ACCOUNT without a password; expiresAt must be in the future', async () => {
  const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
  const sa = (await server.gql<{ createServiceAccount: UserData }>(CREATE_SA, { input: { username: 'ci-bot', name: 'CI', expiresAt, attributes: { repo: 'x' } } })).createServiceAccount;
  assert.equal(sa.type, 'SERVICE_ACCOUNT');
  assert.equal(sa.isAdmin, false);
  assert.equal(sa.expiresAt, expiresAt);
  assert.deepEqual(sa.attributes, { repo: 'x' });
  assert.equal((await server.server.services.store.users.findOne({ id: sa.id }))?.passwordHash, null);
  await expectGqlError(server, CREATE_SA, { input: { username: 'past-bot', expiresAt: new Date(Date.now() - 1000).toISOString() } }, 'BAD_USER_INPUT', 'expiresAt');
  await expectGqlError(server, CREATE_SA, { input: { username: 'ci-bot' } }, 'CONFLICT', 'username');
  await expectGqlError(server, CREATE_SA, { input: { username: 'bad bot' } }, 'BAD_USER_INPUT', 'username');
  const { body } = await server.gqlRaw(CREATE_SA, { input: { username: 'date-bot', expiresAt: 'tomorrow' } });
  assert.equal(body.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
});

test('generated service accounts are listed, filterable by type and deletable', async () => {
  const accounts = server.server.services.generatedAccounts;
  const prospective = await accounts.prospective({
    key: clientIdentityKey('provider-id', 'm2m'), readable: { slug: 'clients', name: 'm2m' }, identity: { providerId: 'provider-id', clientId: 'm2m' }, expiresAt: null,
  });
  assert.ok('account' in prospective);
  const generated = await accounts.save(prospective.account);
  const data = await server.gql<UsersData>(USERS, { filter: { type: 'GENERATED_SERVICE_ACCOUNT' } });
  assert.ok(data.users.edges.some((e) => e.node.id === generated.id));
  assert.ok(data.users.edges.every((e) => e.node.type === 'GENERATED_SERVICE_ACCOUNT'));
  assert.equal(data.users.totalCount, data.users.edges.length);
  await server.gql('mutation ($id: ID!) { deleteUser(id: $id) }', { id: generated.id });
  const again = await server.gql<UsersData>(USERS, { filter: { type: 'GENERATED_SERVICE_ACCOUNT' } });
  assert.ok(!again.users.edges.some((e) => e.node.id === generated.id));
});

test('deleting a user revokes its app passwords: the secret stops working and nothing dangles', async () => {
  const user = await createUser({ username: 'grace', isAdmin: true });
  const created = await server.gql<{ createAppPassword: { secret: string; appPassword: { id: string } } }>(
    'mutation ($input: CreateAppPasswordInput!) { createAppPassword(input: $input) { secret appPassword { id } } }', { input: { userId: user.id } },
  );
  const secret = created.createAppPassword.secret;
  assert.equal((await server.gqlRaw('{ providers { id } }', undefined, secret)).status, 200);
  assert.equal((await server.gql<{ deleteUser: boolean }>('mutation ($id: ID!) { deleteUser(id: $id) }', { id: user.id })).deleteUser, true);
  assert.equal((await server.gqlRaw('{ providers { id } }', undefined, secret)).status, 401);
  assert.equal(await server.server.services.store.appPasswords.count({ userId: user.id }), 0);
  await expectGqlError(server, 'mutation ($id: ID!) { deleteUser(id: $id) }', { id: user.id }, 'NOT_FOUND');
  const sdl = await server.gql<{ __type: { fields: { name: string }[] } }>('{ __type(name: "Mutation") { fields { name description } } }');
  assert.ok(sdl.__type.fields.some((f) => f.name === 'deleteUser'));
});

test('users pages: first, after=endCursor, hasNextPage, totalCount; no user twice, none skipped', async () => {
  for (let i = 0; i < 12; i++) await createUser({ username: `page-${String(i).padStart(2, '0')}` });
  const seen: string[] = [];
  let cursor: string | null = null;
  let total = -1;
  for (;;) {
    const page: UsersData = await server.gql<UsersData>(USERS, { first: 5, after: cursor, filter: { search: 'page-' } });
    total = page.users.totalCount;
    seen.push(...page.users.edges.map((e) => e.node.username));
    assert.ok(page.users.edges.length <= 5);
    if (!page.users.pageInfo.hasNextPage) break;
    cursor = page.users.pageInfo.endCursor;
    assert.equal(cursor, page.users.edges.at(-1)?.cursor);
  }
  assert.equal(total, 12);
  assert.deepEqual(seen, Array.from({ length: 12 }, (_, i) => `page-${String(11 - i).padStart(2, '0')}`), 'newest first, each once');
});

test('first defaults to 50 and may not exceed 500; a cursor this API did not give out is BAD_USER_INPUT', async () => {
  const page = await server.gql<UsersData>(USERS, {});
  assert.ok(page.users.edges.length <= 50);
  await expectGqlError(server, USERS, { first: 501 }, 'BAD_USER_INPUT', 'first');
  await expectGqlError(server, USERS, { first: -1 }, 'BAD_USER_INPUT', 'first');
  await expectGqlError(server, USERS, { after: 'not-a-cursor' }, 'BAD_USER_INPUT', 'after');
  await expectGqlError(server, USERS, { after: Buffer.from('{"x":1}').toString('base64url') }, 'BAD_USER_INPUT', 'after');
  await expectGqlError(server, USERS, { after: Buffer.from('[9000000000000000,"x"]').toString('base64url') }, 'BAD_USER_INPUT', 'after');
  const zero = await server.gql<UsersData>(USERS, { first: 0 });
  assert.deepEqual(zero.users.edges, []);
  assert.ok(zero.users.totalCount > 0);
});

test('search matches a substring of username, name or email, case-insensitively, and takes regex characters literally', async () => {
  await createUser({ username: 'zed.one', name: 'Zed Needle', email: 'z1@example.com' });
  await createUser({ username: 'zed.two', email: 'HAYSTACK-needle@example.org' });
  await createUser({ username: 'zedxtwo' });
  const needle = await server.gql<UsersData>(USERS, { filter: { search: 'NEEDLE' } });
  assert.deepEqual(needle.users.edges.map((e) => e.node.username).sort(), ['zed.one', 'zed.two']);
  // "." must not match any character: zedxtwo does not match "zed.t".
  const dotted = await server.gql<UsersData>(USERS, { filter: { search: 'zed.t' } });
  assert.deepEqual(dotted.users.edges.map((e) => e.node.username), ['zed.two']);
  for (const search of ['(', '.*', '[a-', '\\', '$ne', '^zed']) {
    const r = await server.gql<UsersData>(USERS, { filter: { search } });
    assert.equal(r.users.totalCount, 0, search);
  }
  const combined = await server.gql<UsersData>(USERS, { filter: { search: 'zed', type: 'INTERNAL' }, first: 1 });
  assert.equal(combined.users.totalCount, 3);
  const next = await server.gql<UsersData>(USERS, { filter: { search: 'zed', type: 'INTERNAL' }, first: 5, after: combined.users.pageInfo.endCursor });
  assert.equal(next.users.edges.length, 2);
  await expectGqlError(server, USERS, { filter: { search: 'x'.repeat(201) } }, 'BAD_USER_INPUT', 'filter.search');
});

test('user mutations write CONFIG_CHANGED events without secrets', async () => {
  const user = await createUser({ username: 'audit-user', password: 'super secret password' });
  await server.gql(UPDATE, { id: user.id, input: { name: 'x' } });
  await server.gql('mutation ($id: ID!) { deleteUser(id: $id) }', { id: user.id });
  const events = (await configEvents(server)).filter((e) => e.context.id === user.id);
  assert.deepEqual(events.map((e) => e.context.operation).sort(), ['createUser', 'deleteUser', 'updateUser']);
  assert.ok(!JSON.stringify(events).includes('super secret password'));
  const sa = (await server.gql<{ createServiceAccount: UserData }>(CREATE_SA, { input: { username: 'audit-sa' } })).createServiceAccount;
  assert.equal((await configEvents(server, 'createServiceAccount')).filter((e) => e.context.id === sa.id).length, 1);
});
