/**
 * Admin access (OAUTH.md "Admin access") and the abuse limits of /graphql: who may call it, and
 * what a caller may ask of it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { getIntrospectionQuery, getNamedType, isLeafType, isNonNullType, type GraphQLField, type GraphQLObjectType } from 'graphql';
import { buildAdminSchema } from '../../src/admin/schema.js';
import { basic, postForm, startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
let provider: { id: string; slug: string };
let m2m: { clientId: string; secret: string };
let nonAdmin: { id: string; secret: string };
let otherAdmin: { id: string; secret: string };

async function userWithAppPassword(username: string, isAdmin: boolean): Promise<{ id: string; secret: string }> {
  const id = (await server.gql<{ createUser: { id: string } }>('mutation ($u: String!, $a: Boolean) { createUser(input: { username: $u, isAdmin: $a }) { id } }', { u: username, a: isAdmin })).createUser.id;
  const secret = (await server.gql<{ createAppPassword: { secret: string } }>('mutation ($id: ID!) { createAppPassword(input: { userId: $id }) { secret } }', { id })).createAppPassword.secret;
  return { id, secret };
}

before(async () => {
  server = await startTestServer();
  provider = (await server.gql<{ createProvider: { id: string; slug: string } }>('mutation { createProvider(input: { name: "Access", slug: "access" }) { id slug } }')).createProvider;
  const client = (await server.gql<{ createClient: { clientSecret: string; client: { clientId: string } } }>(
    'mutation ($pid: ID!) { createClient(input: { providerId: $pid, name: "ops", type: CONFIDENTIAL, grantTypes: [CLIENT_CREDENTIALS], allowedScopes: ["openid", "tessera:admin"] }) { clientSecret client { clientId } } }',
    { pid: provider.id },
  )).createClient;
  m2m = { clientId: client.client.clientId, secret: client.clientSecret };
  nonAdmin = await userWithAppPassword('plain-user', false);
  otherAdmin = await userWithAppPassword('second-admin', true);
});
after(async () => {
  await server?.stop();
});

async function post(body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: { data?: unknown; errors?: { message: string; extensions?: { code?: string } }[] } }> {
  const response = await fetch(`${server.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: response.status, body: (await response.json()) as never };
}

test('no token is 401 UNAUTHENTICATED', async () => {
  const { status, body } = await server.gqlRaw('{ providers { id } }', undefined, null);
  assert.equal(status, 401);
  assert.equal(body.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
  assert.equal(body.data, undefined);
});

test('an unknown token, or a non-Bearer scheme, is 401 UNAUTHENTICATED', async () => {
  const unknown = await server.gqlRaw('{ providers { id } }', undefined, 'not-a-real-token');
  assert.equal(unknown.status, 401);
  assert.equal(unknown.body.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
  const basicAuth = await post({ query: '{ providers { id } }' }, { authorization: basic('admin', server.adminToken) });
  assert.equal(basicAuth.status, 401);
});

test('a valid token of a user who is not an admin is 403 FORBIDDEN, for queries and mutations alike', async () => {
  for (const query of ['{ providers { id } }', 'mutation { createUser(input: { username: "sneaky", isAdmin: true }) { id } }']) {
    const { status, body } = await server.gqlRaw(query, undefined, nonAdmin.secret);
    assert.equal(status, 403);
    assert.equal(body.errors?.[0]?.extensions?.code, 'FORBIDDEN');
  }
  assert.equal((await server.gql<{ user: null }>('{ user(username: "sneaky") { id } }')).user, null);
});

/** One operation per root field of the schema, with its required arguments as variables. */
function operationsOf(root: GraphQLObjectType, kind: 'query' | 'mutation'): { name: string; document: string }[] {
  return Object.values(root.getFields()).map((field: GraphQLField<unknown, unknown>) => {
    const required = field.args.filter((a) => isNonNullType(a.type));
    const declared = required.map((a) => `$${a.name}: ${a.type.toString()}`).join(', ');
    const passed = required.map((a) => `${a.name}: $${a.name}`).join(', ');
    const selection = isLeafType(getNamedType(field.type)) ? '' : ' { __typename }';
    return { name: field.name, document: `${kind}${declared ? ` (${declared})` : ''} { ${field.name}${passed ? `(${passed})` : ''}${selection} }` };
  });
}

test('every query and mutation of the schema is 401 without a token and 403 with a non-admin token, and changes nothing', async () => {
  const schema = await buildAdminSchema();
  const operations = [...operationsOf(schema.getQueryType()!, 'query'), ...operationsOf(schema.getMutationType()!, 'mutation')];
  assert.ok(operations.length >= 28, `${operations.length} operations`);
  const before = await server.gql<{ events: { edges: unknown[] } }>('{ events(filter: { action: "CONFIG_CHANGED" }, first: 500) { edges { cursor } } }');
  for (const { name, document } of operations) {
    const anonymous = await server.gqlRaw(document, {}, null);
    assert.equal(anonymous.status, 401, name);
    assert.equal(anonymous.body.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED', name);
    const forbidden = await server.gqlRaw(document, {}, nonAdmin.secret);
    assert.equal(forbidden.status, 403, name);
    assert.equal(forbidden.body.errors?.[0]?.extensions?.code, 'FORBIDDEN', name);
    // The same document from an admin reaches GraphQL (here: missing variables, or an answer).
    const admin = await server.gqlRaw(document, {});
    assert.ok(admin.status === 200 || admin.body.errors?.[0]?.extensions?.code === 'BAD_USER_INPUT', `${name}: ${JSON.stringify(admin.body)}`);
  }
  const after = await server.gql<{ events: { edges: unknown[] } }>('{ events(filter: { action: "CONFIG_CHANGED" }, first: 500) { edges { cursor } } }');
  assert.equal(after.events.edges.length, before.events.edges.length, 'no refused call changed anything');
});

test('an app password of any admin user is accepted', async () => {
  const { status, body } = await server.gqlRaw('{ providers { slug } }', undefined, otherAdmin.secret);
  assert.equal(status, 200);
  assert.deepEqual(body.errors, undefined);
});

test('introspection needs an admin: anonymous introspection is 401, an admin gets the full standard introspection', async () => {
  const anonymous = await server.gqlRaw(getIntrospectionQuery(), undefined, null);
  assert.equal(anonymous.status, 401);
  assert.equal(anonymous.body.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
  const forbidden = await server.gqlRaw('{ __schema { types { name } } }', undefined, nonAdmin.secret);
  assert.equal(forbidden.status, 403);
  const admin = await server.gqlRaw(getIntrospectionQuery(), undefined);
  assert.equal(admin.status, 200, JSON.stringify(admin.body.errors));
  const schema = admin.body.data?.__schema as { types: { name: string }[] };
  assert.ok(schema.types.some((t) => t.name === 'FederatedSource'));
});

test('an access token whose subject is an admin and whose scope holds tessera:admin is accepted (client_credentials with an admin app password)', async () => {
  const token = await postForm(`${server.url}/application/o/token/`, {
    grant_type: 'client_credentials', username: 'second-admin', password: otherAdmin.secret, scope: 'openid tessera:admin',
  }, { authorization: basic(m2m.clientId, m2m.secret) });
  assert.equal(token.status, 200, JSON.stringify(token.body));
  assert.equal(token.body.scope, 'openid tessera:admin');
  const accessToken = token.body.access_token as string;
  const { status, body } = await server.gqlRaw('{ providers { slug } }', undefined, accessToken);
  assert.equal(status, 200, JSON.stringify(body));
  // Its mutations are recorded under that admin.
  await server.gqlRaw('mutation { createUser(input: { username: "made-by-token" }) { id } }', undefined, accessToken);
  const events = await server.gql<{ events: { edges: { node: { username: string; context: { operation: string } } }[] } }>(
    '{ events(filter: { action: "CONFIG_CHANGED", username: "second-admin" }) { edges { node { username context } } } }',
  );
  assert.ok(events.events.edges.some((e) => e.node.context.operation === 'createUser'));
});

test('an access token of a non-admin subject is 403; a revoked one is 401', async () => {
  const { services } = server.server;
  const p = (await services.providers.get(provider.id))!;
  const user = (await services.users.get(nonAdmin.id))!;
  const issued = await services.tokens.issueAccessToken({ provider: p, client: { clientId: m2m.clientId }, user, scopes: [] });
  assert.equal((await server.gqlRaw('{ providers { id } }', undefined, issued.token)).status, 403);
  const admin = (await services.users.get(otherAdmin.id))!;
  const adminToken = await services.tokens.issueAccessToken({ provider: p, client: { clientId: m2m.clientId }, user: admin, scopes: ['tessera:admin'] });
  assert.equal((await server.gqlRaw('{ providers { id } }', undefined, adminToken.token)).status, 200);
  await services.tokens.revokeAccessToken(adminToken.claims);
  assert.equal((await server.gqlRaw('{ providers { id } }', undefined, adminToken.token)).status, 401);
});

/** client_credentials on a user's app password through the ops client. */
function tokenFor(username: string, secret: string, scope: string) {
  return postForm(`${server.url}/application/o/token/`, { grant_type: 'client_credentials', username, password: secret, scope }, { authorization: basic(m2m.clientId, m2m.secret) });
}

test("an admin's access token without the scope tessera:admin is 403 FORBIDDEN (insufficient_scope)", async () => {
  const token = await tokenFor('second-admin', otherAdmin.secret, 'openid');
  assert.equal(token.status, 200, JSON.stringify(token.body));
  const response = await fetch(`${server.url}/graphql`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${String(token.body.access_token)}` }, body: JSON.stringify({ query: '{ providers { id } }' }),
  });
  assert.equal(response.status, 403);
  const body = (await response.json()) as { errors?: { message: string; extensions?: { code?: string } }[]; data?: unknown };
  assert.equal(body.errors?.[0]?.extensions?.code, 'FORBIDDEN');
  assert.match(body.errors?.[0]?.message ?? '', /tessera:admin/);
  assert.equal(body.data, undefined);
  assert.match(response.headers.get('www-authenticate') ?? '', /error="insufficient_scope", scope="tessera:admin"/);
  // The same admin's app password still works as before.
  assert.equal((await server.gqlRaw('{ providers { id } }', undefined, otherAdmin.secret)).status, 200);
});

test('a non-admin asking for tessera:admin is not granted it (RFC 6749 §3.3: the response scope says so), and the token is 403', async () => {
  const token = await tokenFor('plain-user', nonAdmin.secret, 'openid tessera:admin');
  assert.equal(token.status, 200, JSON.stringify(token.body));
  assert.equal(token.body.scope, 'openid');
  const claims = JSON.parse(Buffer.from(String(token.body.access_token).split('.')[1]!, 'base64url').toString()) as { scope: string };
  assert.equal(claims.scope, 'openid');
  assert.equal((await server.gqlRaw('{ providers { id } }', undefined, String(token.body.access_token))).status, 403);
});

test('tessera:admin only through a client whose allowedScopes list it: otherwise invalid_scope, even for an admin', async () => {
  const plain = (await server.gql<{ createClient: { clientSecret: string; client: { clientId: string } } }>(
    'mutation ($pid: ID!) { createClient(input: { providerId: $pid, name: "plain", type: CONFIDENTIAL, grantTypes: [CLIENT_CREDENTIALS] }) { clientSecret client { clientId } } }',
    { pid: provider.id },
  )).createClient;
  const token = await postForm(`${server.url}/application/o/token/`, {
    grant_type: 'client_credentials', username: 'second-admin', password: otherAdmin.secret, scope: 'tessera:admin',
  }, { authorization: basic(plain.client.clientId, plain.clientSecret) });
  assert.equal(token.status, 400);
  assert.equal(token.body.error, 'invalid_scope');
});

test('a query nested deeper than 10 levels is refused before it runs', async () => {
  const deep = '{ users { edges { node { appPasswords { user { appPasswords { user { appPasswords { user { appPasswords { id } } } } } } } } } } }';
  const { status, body } = await server.gqlRaw(deep);
  assert.equal(status, 400);
  assert.equal(body.errors?.[0]?.extensions?.code, 'GRAPHQL_VALIDATION_FAILED');
  assert.match(body.errors?.[0]?.message ?? '', /levels deep; at most 10/);
  const shallow = await server.gqlRaw('{ users { edges { node { appPasswords { user { username } } } } } }');
  assert.equal(shallow.status, 200);
});

test('a query that costs too much (big pages of nested lists, alias floods) is refused', async () => {
  const costly = '{ users(first: 500) { edges { node { appPasswords { user { appPasswords { user { appPasswords { id description expiresAt } } } } } } } } }';
  const { status, body } = await server.gqlRaw(costly);
  assert.equal(status, 400);
  assert.match(body.errors?.[0]?.message ?? '', /costs \d+; at most 20000/);
  const aliases = `{ ${Array.from({ length: 60 }, (_, i) => `a${i}: users(first: 500) { edges { node { id username } } }`).join(' ')} }`;
  assert.equal((await server.gqlRaw(aliases)).status, 400);
});

test('a fragment bomb is measured once per fragment, and refused quickly', async () => {
  const fragments = Array.from({ length: 30 }, (_, i) => `fragment F${i} on User { ...F${i + 1} a${i}: appPasswords { id } ...F${i + 1} }`).join('\n');
  const query = `{ users(first: 1) { edges { node { ...F0 } } } }\n${fragments}\nfragment F30 on User { id }`;
  const started = Date.now();
  const { status } = await server.gqlRaw(query);
  assert.equal(status, 400);
  assert.ok(Date.now() - started < 2_000);
});

test('a request body over 1 MiB is 413', async () => {
  const { status, body } = await post({ query: `{ providers { id } } # ${'x'.repeat(1024 * 1024)}` }, { authorization: `Bearer ${server.adminToken}` });
  assert.equal(status, 413);
  assert.equal(body.errors?.[0]?.extensions?.code, 'BAD_REQUEST');
});

test('bad requests never leak a stack trace: malformed JSON, a syntax error, an unknown field', async () => {
  const auth = { authorization: `Bearer ${server.adminToken}` };
  for (const [payload, expected] of [['{"query": ', 400], [{ query: '{ providers { id ' }, 400], [{ query: '{ nope }' }, 400]] as const) {
    const { status, body } = await post(payload, auth);
    assert.equal(status, expected);
    assert.doesNotMatch(JSON.stringify(body), /\bat [\w.<>]+ \(|node_modules/);
  }
});
