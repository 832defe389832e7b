/**
 * Property: whatever reaches POST /graphql — with no token, a wrong one, an admin's; any content
 * type; JSON that is broken, deeply nested or huge in width; operations stitched from real field
 * names with hostile arguments and variables — the answer is never a 5xx, an unauthenticated
 * request is always a 401 before anything is parsed, and no answer carries a stack trace.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { startTestServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
/** HTTP statuses the admin's requests got: the property must have reached the resolvers, not only the guard. */
const adminStatuses = new Map<number, number>();

before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t.stop();
});

const hostileString = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'grapheme', maxLength: 15 }),
  fc.constantFrom('', '"', '\\', '{"$ne":null}', '$where', '\u0000', '\ud800', 'a'.repeat(5000), '../../etc/passwd', '<script>'),
);

/** Argument values as GraphQL source text: strings, numbers, enums, lists, objects, variables. */
const argumentValue: fc.Arbitrary<string> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    hostileString.map((s) => JSON.stringify(s)),
    fc.integer().map(String),
    fc.double({ noNaN: true }).map(String),
    fc.constantFrom('true', 'null', 'DEVICE_CODE', 'CONFIDENTIAL', 'RS256', '$v', '$missing'),
    fc.array(tie('value'), { maxLength: 3 }).map((items) => `[${items.join(', ')}]`),
    fc.array(fc.tuple(fc.constantFrom('name', 'slug', 'id', 'first', 'after', 'input', 'clientId', 'expression'), tie('value')), { maxLength: 3 })
      .map((fields) => `{${fields.map(([k, v]) => `${k}: ${v}`).join(', ')}}`),
  ),
})).value;

const rootField = fc.constantFrom(
  'providers', 'provider', 'clients', 'client', 'users', 'user', 'events', 'federatedSources', 'policies', 'testPolicy',
  'createProvider', 'updateProvider', 'deleteProvider', 'createClient', 'deleteClient', 'createUser', 'setUserPassword',
  'createAppPassword', 'revokeAppPassword', 'createFederatedSource', 'bindPolicy', 'nonexistentField', '__schema', '__type',
);
const selection = fc.constantFrom('', '{ id }', '{ id name }', '{ edges { node { id } } totalCount }', '{ __typename }', '{ nope }', '{ id { deeper } }');

const operation = fc.record({
  kind: fc.constantFrom('query', 'mutation', 'subscription', '', 'query Q($v: String)'),
  field: rootField,
  args: fc.array(fc.tuple(fc.constantFrom('id', 'input', 'first', 'after', 'filter', 'expression', 'claims', 'providerId'), argumentValue), { maxLength: 3 }),
  selection,
}).map(({ kind, field, args, selection: sel }) => `${kind} { ${field}${args.length ? `(${args.map(([k, v]) => `${k}: ${v}`).join(', ')})` : ''} ${sel} }`);

/** Well-formed operations, so that the property also reaches resolvers with real arguments. */
const validOperation = fc.record({
  query: fc.constantFrom(
    'query { providers { id slug } }',
    'query($v: String) { users(first: 3, filter: { search: $v }) { totalCount } }',
    'query($id: ID!) { provider(id: $id) { id } }',
    'query($id: ID!) { client(id: $id) { id } }',
    'query { events(first: 2) { edges { node { id } } } }',
  ),
  variables: fc.record({ v: hostileString, id: hostileString }),
}).map((b) => JSON.stringify(b));

const body = fc.oneof(
  validOperation,
  fc.record({ query: operation, variables: fc.option(fc.dictionary(fc.constantFrom('v', 'input', 'id'), fc.jsonValue({ maxDepth: 3 })), { nil: undefined }) })
    .map((b) => JSON.stringify(b)),
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.integer({ min: 1, max: 3000 }).map((depth) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`),
  fc.integer({ min: 1, max: 3000 }).map((depth) => `{"query":"${'{ a '.repeat(depth)}${'}'.repeat(depth)}"}`),
  fc.constantFrom('', '{', '{"query":', '{"query": null}', '{"query": 5}', '[]', '[{"query":"{ providers { id } }"}]', 'null', '5', '"query"', 'true'),
);

const contentType = fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/graphql', 'text/plain', 'application/x-www-form-urlencoded', '');
const authorization = fc.oneof(
  fc.constant<string | null>(null),
  fc.constantFrom('Bearer', 'Bearer ', 'Basic Zm9vOmJhcg==', 'Bearer not-a-token', 'bearer \u00e9', `Bearer ${'x'.repeat(9000)}`, 'DPoP abc'),
  fc.constant('ADMIN'),
);

async function send(payload: string, type: string, auth: string | null): Promise<void> {
  const headers: Record<string, string> = {};
  if (type) headers['content-type'] = type;
  // Apollo's CSRF prevention wants a preflight-forcing header on simple content types.
  headers['apollo-require-preflight'] = 'true';
  if (auth === 'ADMIN') headers.authorization = `Bearer ${t.adminToken}`;
  else if (auth !== null) headers.authorization = auth;
  let response: Response;
  try {
    response = await fetch(`${t.url}/graphql`, { method: 'POST', headers, body: payload });
  } catch (error) {
    // Headers fetch itself refuses to send (non-Latin-1) never reach the server.
    if (error instanceof TypeError && auth !== 'ADMIN') return;
    throw error;
  }
  const text = await response.text();
  assert.ok(response.status < 500, `HTTP ${response.status} for ${payload.slice(0, 200)}: ${text.slice(0, 300)}`);
  assert.doesNotMatch(text, /\bat [\w.<>]+ \(|node_modules/, 'no stack trace in the answer');
  if (auth === 'ADMIN') adminStatuses.set(response.status, (adminStatuses.get(response.status) ?? 0) + 1);
  if (auth !== 'ADMIN') assert.equal(response.status, 401, `without an admin token the answer is 401: ${text.slice(0, 200)}`);
}

describe('fuzzing the admin API', () => {
  test('a JSON body that is not an object (null, a number, a string) is 400 BAD_REQUEST, not a 500 (found by the property below)', async () => {
    for (const payload of ['null', '5', '"query"', 'true']) {
      const response = await fetch(`${t.url}/graphql`, {
        method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${t.adminToken}` }, body: payload,
      });
      assert.equal(response.status, 400, payload);
      const answer = (await response.json()) as { errors: { extensions: { code: string } }[] };
      assert.equal(answer.errors[0]?.extensions.code, 'BAD_REQUEST', payload);
    }
  });

  test('a document nested thousands of levels deep is 400 QUERY_TOO_DEEP before it is parsed, by POST and GET (found by the property below on Node 24: a 500)', async () => {
    const admin = { authorization: `Bearer ${t.adminToken}` };
    const deep = (depth: number, open = '{ a ', close = '}') => `{${open.repeat(depth)}a${close.repeat(depth)}}`;
    for (const query of [deep(3037), deep(65, '{ a ', '}'), `{ providers(x: ${'['.repeat(200)}1${']'.repeat(200)}) { id } }`]) {
      const posted = await fetch(`${t.url}/graphql`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ query }) });
      assert.equal(posted.status, 400, query.slice(0, 40));
      assert.equal(((await posted.json()) as { errors: { extensions: { code: string } }[] }).errors[0]!.extensions.code, 'QUERY_TOO_DEEP');
    }
    const got = await fetch(`${t.url}/graphql?query=${encodeURIComponent(deep(1000))}`, { headers: { ...admin, 'apollo-require-preflight': 'true' } });
    assert.equal(got.status, 400);
    // Braces in a comment or a string are not nesting: the document is answered as usual.
    const inComment = await t.gqlRaw(`{ providers { id name } } # ${'{'.repeat(100)}`);
    assert.equal(inComment.status, 200, JSON.stringify(inComment.body));
    const inString = await t.gqlRaw(`query($v: String = "${'{'.repeat(100)}") { users(first: 1, filter: { search: $v }) { totalCount } }`);
    assert.equal(inString.status, 200, JSON.stringify(inString.body));
  });

  test('POST /graphql never answers 5xx, and refuses every request without an admin token', async () => {
    await fc.assert(
      fc.asyncProperty(body, contentType, authorization, async (payload, type, auth) => {
        await send(payload, type, auth);
      }),
      { numRuns: 400 },
    );
    assert.ok((adminStatuses.get(200) ?? 0) > 0, `some admin requests were executed: ${JSON.stringify([...adminStatuses])}`);
    assert.ok((adminStatuses.get(400) ?? 0) > 0, `some admin requests were refused as malformed: ${JSON.stringify([...adminStatuses])}`);
  });
});
