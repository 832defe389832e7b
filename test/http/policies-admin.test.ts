/**
 * Admin API for policies and mappings over /graphql: management of expression policies, bindings,
 * source property mappings and scope mappings; expressions compiled on save (errors name the
 * position); testPolicy / testMapping; a CONFIG_CHANGED event for every mutation.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { seedMachineClient, seedMachineProvider, unique } from '../helpers/seed.js';
import type { FederatedSource } from '../../src/domain/model.js';

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t.stop();
});

interface PolicyView { id: string; name: string; expression: string; bindings: { id: string; targetType: string; targetId: string; order: number }[] }
interface TestResult { passed: boolean; result: unknown; error: string | null; steps: number }

const POLICY_FIELDS = 'id name expression createdAt updatedAt bindings { id targetType targetId order }';

async function createPolicy(expression: string, name = unique('policy')): Promise<PolicyView> {
  const data = await t.gql<{ createExpressionPolicy: PolicyView }>(
    `mutation($input: CreateExpressionPolicyInput!) { createExpressionPolicy(input: $input) { ${POLICY_FIELDS} } }`,
    { input: { name, expression } },
  );
  return data.createExpressionPolicy;
}

/** The single error of a GraphQL answer that must fail. */
async function gqlError(query: string, variables?: Record<string, unknown>) {
  const { body } = await t.gqlRaw(query, variables);
  assert.ok(body.errors?.length, `expected an error, got ${JSON.stringify(body.data)}`);
  return body.errors[0]!;
}

async function configChanges(operation: string) {
  await t.server.services.events.flush();
  const events = await t.server.services.store.events.find({ action: 'CONFIG_CHANGED' });
  return events.filter((e) => e.context.operation === operation);
}

async function insertSource(): Promise<FederatedSource> {
  const now = new Date();
  const slug = unique('src');
  return t.server.services.store.federatedSources.insert({
    id: crypto.randomUUID(), name: slug, slug, issuer: null, audience: null, jwksUrl: null, oidcDiscoveryUrl: null,
    jwks: { keys: [] }, keysFetchedAt: null, createdAt: now, updatedAt: now,
  });
}

const CREATE = 'mutation($input: CreateExpressionPolicyInput!) { createExpressionPolicy(input: $input) { id } }';

describe('expression policies', () => {
  test('create, read, update and delete a policy, each mutation recording CONFIG_CHANGED', async () => {
    const created = await createPolicy('request.context.oauth_grant_type == "client_credentials"');
    assert.equal(created.expression, 'request.context.oauth_grant_type == "client_credentials"');
    assert.deepEqual(created.bindings, []);

    const listed = await t.gql<{ expressionPolicies: { id: string }[] }>('{ expressionPolicies { id } }');
    assert.ok(listed.expressionPolicies.some((p) => p.id === created.id));

    const updated = await t.gql<{ updateExpressionPolicy: PolicyView }>(
      `mutation($id: ID!) { updateExpressionPolicy(id: $id, input: { expression: "true" }) { ${POLICY_FIELDS} } }`, { id: created.id },
    );
    assert.equal(updated.updateExpressionPolicy.expression, 'true');
    assert.equal(updated.updateExpressionPolicy.name, created.name);

    const deleted = await t.gql<{ deleteExpressionPolicy: boolean }>('mutation($id: ID!) { deleteExpressionPolicy(id: $id) }', { id: created.id });
    assert.equal(deleted.deleteExpressionPolicy, true);
    const gone = await t.gql<{ expressionPolicy: unknown }>('query($id: ID!) { expressionPolicy(id: $id) { id } }', { id: created.id });
    assert.equal(gone.expressionPolicy, null);

    for (const operation of ['createExpressionPolicy', 'updateExpressionPolicy', 'deleteExpressionPolicy']) {
      const events = await configChanges(operation);
      assert.ok(events.some((e) => e.context.policyId === created.id && e.username === 'admin'), `${operation} recorded`);
    }
  });

  test('a syntax error is BAD_USER_INPUT naming the line and column', async () => {
    const error = await gqlError(CREATE, { input: { name: unique('bad'), expression: 'request.context.oauth_jwt.iss ==\n  "a" &&' } });
    assert.equal(error.extensions?.code, 'BAD_USER_INPUT');
    assert.equal(error.extensions?.field, 'expression');
    assert.match(error.message, /syntax error/);
    assert.match(error.message, /line 2, column 9/);
  });

  test('an unknown variable is BAD_USER_INPUT naming the position', async () => {
    const error = await gqlError(CREATE, { input: { name: unique('bad'), expression: 'true && user.name == "x"' } });
    assert.equal(error.extensions?.code, 'BAD_USER_INPUT');
    assert.match(error.message, /Unknown variable: user at line 1, column 9/);
  });

  test('a policy that does not return a bool is BAD_USER_INPUT', async () => {
    const error = await gqlError(CREATE, { input: { name: unique('bad'), expression: '1 + 2' } });
    assert.equal(error.extensions?.code, 'BAD_USER_INPUT');
    assert.match(error.message, /must return a bool, this returns int/);
  });

  test('an expression over 4 KiB is BAD_USER_INPUT', async () => {
    const expression = `request.client.name == "${'x'.repeat(4100)}"`;
    const error = await gqlError(CREATE, { input: { name: unique('big'), expression } });
    assert.equal(error.extensions?.code, 'BAD_USER_INPUT');
    assert.match(error.message, /longer than 4096 bytes/);
  });

  test('matches() is refused: regular expressions can backtrack without bound', async () => {
    const error = await gqlError(CREATE, { input: { name: unique('re'), expression: 'request.client.name.matches("(a+)+$")' } });
    assert.equal(error.extensions?.code, 'BAD_USER_INPUT');
    assert.match(error.message, /matches\(\) is not allowed/);
  });

  test('an empty name is BAD_USER_INPUT and a taken name is CONFLICT', async () => {
    const empty = await gqlError(CREATE, { input: { name: '  ', expression: 'true' } });
    assert.equal(empty.extensions?.code, 'BAD_USER_INPUT');
    assert.equal(empty.extensions?.field, 'name');
    const name = unique('dup');
    await createPolicy('true', name);
    const taken = await gqlError(CREATE, { input: { name, expression: 'true' } });
    assert.equal(taken.extensions?.code, 'CONFLICT');
  });

  test('updating or deleting an unknown policy is NOT_FOUND', async () => {
    const update = await gqlError('mutation { updateExpressionPolicy(id: "nope", input: { name: "x" }) { id } }');
    assert.equal(update.extensions?.code, 'NOT_FOUND');
    const remove = await gqlError('mutation { deleteExpressionPolicy(id: "nope") }');
    assert.equal(remove.extensions?.code, 'NOT_FOUND');
  });
});

describe('policy bindings', () => {
  const BIND = 'mutation($input: BindPolicyInput!) { bindPolicy(input: $input) { id policyId targetType targetId order policy { name } } }';

  test('bind to a provider and to a client, list them, unbind, each recording CONFIG_CHANGED', async () => {
    const provider = await seedMachineProvider(t);
    const { client } = await seedMachineClient(t, provider);
    const policy = await createPolicy('true');
    const toProvider = await t.gql<{ bindPolicy: { id: string; order: number; policy: { name: string } } }>(BIND, {
      input: { policyId: policy.id, targetType: 'PROVIDER', targetId: provider.id },
    });
    assert.equal(toProvider.bindPolicy.order, 0);
    assert.equal(toProvider.bindPolicy.policy.name, policy.name);
    await t.gql(BIND, { input: { policyId: policy.id, targetType: 'CLIENT', targetId: client.id, order: 5 } });

    const listed = await t.gql<{ policyBindings: { targetType: string; targetId: string }[] }>(
      'query($id: ID!) { policyBindings(policyId: $id) { targetType targetId } }', { id: policy.id },
    );
    assert.deepEqual(listed.policyBindings.map((b) => b.targetType).sort(), ['CLIENT', 'PROVIDER']);
    const byTarget = await t.gql<{ policyBindings: unknown[] }>(
      'query($id: ID!) { policyBindings(targetType: CLIENT, targetId: $id) { id } }', { id: client.id },
    );
    assert.equal(byTarget.policyBindings.length, 1);

    await t.gql('mutation($id: ID!) { unbindPolicy(id: $id) }', { id: toProvider.bindPolicy.id });
    const after = await t.gql<{ expressionPolicy: PolicyView }>(`query($id: ID!) { expressionPolicy(id: $id) { ${POLICY_FIELDS} } }`, { id: policy.id });
    assert.deepEqual(after.expressionPolicy.bindings.map((b) => [b.targetType, b.order]), [['CLIENT', 5]]);

    assert.ok((await configChanges('bindPolicy')).some((e) => e.context.policyId === policy.id));
    assert.ok((await configChanges('unbindPolicy')).some((e) => e.context.bindingId === toProvider.bindPolicy.id));
  });

  test('binding to an unknown target or an unknown policy is NOT_FOUND', async () => {
    const policy = await createPolicy('true');
    const target = await gqlError(BIND, { input: { policyId: policy.id, targetType: 'CLIENT', targetId: 'nope' } });
    assert.equal(target.extensions?.code, 'NOT_FOUND');
    const provider = await seedMachineProvider(t);
    const missing = await gqlError(BIND, { input: { policyId: 'nope', targetType: 'PROVIDER', targetId: provider.id } });
    assert.equal(missing.extensions?.code, 'NOT_FOUND');
  });

  test('binding the same policy to the same target twice is CONFLICT', async () => {
    const provider = await seedMachineProvider(t);
    const policy = await createPolicy('true');
    const input = { policyId: policy.id, targetType: 'PROVIDER', targetId: provider.id };
    await t.gql(BIND, { input });
    const error = await gqlError(BIND, { input });
    assert.equal(error.extensions?.code, 'CONFLICT');
  });

  test('deleting a policy removes its bindings', async () => {
    const provider = await seedMachineProvider(t);
    const policy = await createPolicy('true');
    await t.gql(BIND, { input: { policyId: policy.id, targetType: 'PROVIDER', targetId: provider.id } });
    await t.gql('mutation($id: ID!) { deleteExpressionPolicy(id: $id) }', { id: policy.id });
    const left = await t.gql<{ policyBindings: unknown[] }>('query($id: ID!) { policyBindings(targetId: $id) { id } }', { id: provider.id });
    assert.deepEqual(left.policyBindings, []);
  });
});

describe('source property mappings', () => {
  test('create, list, update and delete, each recording CONFIG_CHANGED', async () => {
    const source = await insertSource();
    const created = await t.gql<{ createSourcePropertyMapping: { id: string; federatedSourceId: string; expression: string } }>(
      `mutation($input: CreateSourcePropertyMappingInput!) { createSourcePropertyMapping(input: $input) { id federatedSourceId name expression } }`,
      { input: { federatedSourceId: source.id, name: 'namespace', expression: '{"kubernetes_namespace": claims["kubernetes.io"].namespace}' } },
    );
    const id = created.createSourcePropertyMapping.id;
    assert.equal(created.createSourcePropertyMapping.federatedSourceId, source.id);
    const listed = await t.gql<{ sourcePropertyMappings: { id: string }[] }>(
      'query($id: ID!) { sourcePropertyMappings(federatedSourceId: $id) { id } }', { id: source.id },
    );
    assert.deepEqual(listed.sourcePropertyMappings.map((m) => m.id), [id]);
    const updated = await t.gql<{ updateSourcePropertyMapping: { expression: string } }>(
      'mutation($id: ID!) { updateSourcePropertyMapping(id: $id, input: { expression: "{\\"subject\\": claims.sub}" }) { expression } }', { id },
    );
    assert.equal(updated.updateSourcePropertyMapping.expression, '{"subject": claims.sub}');
    await t.gql('mutation($id: ID!) { deleteSourcePropertyMapping(id: $id) }', { id });
    for (const operation of ['createSourcePropertyMapping', 'updateSourcePropertyMapping', 'deleteSourcePropertyMapping']) {
      assert.ok((await configChanges(operation)).some((e) => e.context.mappingId === id), `${operation} recorded`);
    }
  });

  test('a mapping that does not return a map, or uses `request`, is BAD_USER_INPUT', async () => {
    const source = await insertSource();
    const query = 'mutation($input: CreateSourcePropertyMappingInput!) { createSourcePropertyMapping(input: $input) { id } }';
    const notMap = await gqlError(query, { input: { federatedSourceId: source.id, name: 'x', expression: 'claims.sub == "a"' } });
    assert.equal(notMap.extensions?.code, 'BAD_USER_INPUT');
    assert.match(notMap.message, /must return a map, this returns bool/);
    const wrongVariable = await gqlError(query, { input: { federatedSourceId: source.id, name: 'x', expression: '{"a": request.user}' } });
    assert.match(wrongVariable.message, /Unknown variable: request at line 1, column 7/);
  });

  test('a mapping for an unknown source is NOT_FOUND', async () => {
    const error = await gqlError(
      'mutation { createSourcePropertyMapping(input: { federatedSourceId: "nope", name: "x", expression: "{\\"a\\": 1}" }) { id } }',
    );
    assert.equal(error.extensions?.code, 'NOT_FOUND');
  });
});

describe('scope mappings', () => {
  const CREATE_SCOPE = 'mutation($input: CreateScopeMappingInput!) { createScopeMapping(input: $input) { id providerId scope name expression } }';

  test('create, list, update and delete, each recording CONFIG_CHANGED', async () => {
    const provider = await seedMachineProvider(t);
    const created = await t.gql<{ createScopeMapping: { id: string; scope: string } }>(CREATE_SCOPE, {
      input: { providerId: provider.id, scope: 'kubernetes', name: 'namespace', expression: '{"kubernetes_namespace": request.user.attributes.kubernetes_namespace}' },
    });
    const id = created.createScopeMapping.id;
    assert.equal(created.createScopeMapping.scope, 'kubernetes');
    const listed = await t.gql<{ scopeMappings: { id: string }[] }>('query($id: ID!) { scopeMappings(providerId: $id) { id } }', { id: provider.id });
    assert.deepEqual(listed.scopeMappings.map((m) => m.id), [id]);
    const updated = await t.gql<{ updateScopeMapping: { scope: string } }>(
      'mutation($id: ID!) { updateScopeMapping(id: $id, input: { scope: "k8s" }) { scope } }', { id },
    );
    assert.equal(updated.updateScopeMapping.scope, 'k8s');
    await t.gql('mutation($id: ID!) { deleteScopeMapping(id: $id) }', { id });
    for (const operation of ['createScopeMapping', 'updateScopeMapping', 'deleteScopeMapping']) {
      assert.ok((await configChanges(operation)).some((e) => e.context.mappingId === id), `${operation} recorded`);
    }
  });

  test('a scope that is not a scope token is BAD_USER_INPUT', async () => {
    const provider = await seedMachineProvider(t);
    const error = await gqlError(CREATE_SCOPE, { input: { providerId: provider.id, scope: 'two words', name: 'x', expression: '{"a": 1}' } });
    assert.equal(error.extensions?.code, 'BAD_USER_INPUT');
    assert.equal(error.extensions?.field, 'scope');
  });

  test('a syntax error in a scope mapping names the position', async () => {
    const provider = await seedMachineProvider(t);
    const error = await gqlError(CREATE_SCOPE, { input: { providerId: provider.id, scope: 'x', name: 'x', expression: '{"a": }' } });
    assert.equal(error.extensions?.code, 'BAD_USER_INPUT');
    assert.match(error.message, /syntax error: .* at line 1, column 7/);
  });
});

describe('testPolicy and testMapping', () => {
  const TEST_POLICY = 'query($e: String!, $c: JSON) { testPolicy(expression: $e, context: $c) { passed result error steps } }';
  const TEST_MAPPING = 'query($e: String!, $c: JSON, $k: MappingKind) { testMapping(expression: $e, context: $c, kind: $k) { passed result error steps } }';
  const jwtContext = (iss: string) => ({ request: { context: { oauth_jwt: { iss, 'kubernetes.io': { namespace: 'ci' } }, oauth_scopes: ['openid'] } } });

  test('testPolicy evaluates against the sample: true passes, false does not', async () => {
    const expression = 'request.context.oauth_jwt.iss == "https://my.issuer"';
    const yes = await t.gql<{ testPolicy: TestResult }>(TEST_POLICY, { e: expression, c: jwtContext('https://my.issuer') });
    assert.deepEqual({ ...yes.testPolicy, steps: 0 }, { passed: true, result: true, error: null, steps: 0 });
    assert.ok(yes.testPolicy.steps > 0);
    const no = await t.gql<{ testPolicy: TestResult }>(TEST_POLICY, { e: expression, c: jwtContext('https://other.issuer') });
    assert.equal(no.testPolicy.passed, false);
    assert.equal(no.testPolicy.result, false);
  });

  test('testPolicy reports an evaluation error (a missing key) as not passed, with the position', async () => {
    const result = await t.gql<{ testPolicy: TestResult }>(TEST_POLICY, { e: 'request.context.oauth_jwt.iss == "x"', c: { request: { context: {} } } });
    assert.equal(result.testPolicy.passed, false);
    assert.match(String(result.testPolicy.error), /No such key: oauth_jwt at line 1, column 17/);
  });

  test('testPolicy stops an expensive expression at the evaluation bound', async () => {
    const ten = '[0,1,2,3,4,5,6,7,8,9]';
    const expression = `${ten}.all(a, ${ten}.all(b, ${ten}.all(c, ${ten}.all(d, ${ten}.all(e, a + b + c + d + e >= 0)))))`;
    const result = await t.gql<{ testPolicy: TestResult }>(TEST_POLICY, { e: expression, c: {} });
    assert.equal(result.testPolicy.passed, false);
    assert.match(String(result.testPolicy.error), /evaluation stopped/);
  });

  test('testPolicy with a syntax error is BAD_USER_INPUT naming the position', async () => {
    const error = await gqlError(TEST_POLICY, { e: 'request.client.name ==', c: {} });
    assert.equal(error.extensions?.code, 'BAD_USER_INPUT');
    assert.match(error.message, /line 1, column 23/);
  });

  test('testMapping evaluates a source property mapping against sample claims', async () => {
    const result = await t.gql<{ testMapping: TestResult }>(TEST_MAPPING, {
      e: '{"kubernetes_namespace": claims["kubernetes.io"].namespace, "subject": claims.sub}',
      c: { claims: { sub: 'system:serviceaccount:ci:runner', 'kubernetes.io': { namespace: 'ci' } } },
      k: 'SOURCE_PROPERTY',
    });
    assert.deepEqual(result.testMapping.result, { kubernetes_namespace: 'ci', subject: 'system:serviceaccount:ci:runner' });
    assert.equal(result.testMapping.passed, true);
  });

  test('testMapping evaluates a scope mapping (the default kind), absent optionals left out', async () => {
    const result = await t.gql<{ testMapping: TestResult }>(TEST_MAPPING, {
      e: '{"kubernetes_namespace": request.user.attributes.kubernetes_namespace, "team": request.user.attributes.?team, "n": 1}',
      c: { request: { user: { username: 'svc', attributes: { kubernetes_namespace: 'ci' } } } },
    });
    assert.deepEqual(result.testMapping.result, { kubernetes_namespace: 'ci', n: 1 });
  });
});
