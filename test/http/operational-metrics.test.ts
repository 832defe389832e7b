/**
 * The metrics worth alerting on, read from /metrics after driving the real server: token requests
 * by grant and outcome, device-flow outcomes, policy denials, JWKS fetch failures, store latency and
 * rate-limit refusals. Labels stay low-cardinality: no client_id, no caller-chosen grant_type.
 * Also: with no OTEL_* variable set, tracing stays off. And the Grafana dashboard in examples/
 * only names metrics that /metrics has.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import { basic, freePort, postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { seedClient, seedMachineClient, seedMachineProvider, seedProvider, seedUser, unique } from '../helpers/seed.js';
import { decide, poll, startDevice } from '../helpers/device.js';
import { JWT_BEARER, signingKey } from '../helpers/federation.js';
import { tracingEnabled } from '../../src/telemetry/trace.js';
import { tracingRequested } from '../../src/telemetry/otel.js';

let t: TestServer;
before(async () => {
  delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  delete process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  t = await startTestServer();
});
after(async () => {
  await t.stop();
});

async function metricsText(): Promise<string> {
  const response = await fetch(`${t.url}/metrics`);
  assert.equal(response.status, 200);
  return response.text();
}

/** The value of one sample, 0 when the series does not exist yet. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const labelText = line.slice(name.length).split('} ')[0]!;
    if (wanted.every((w) => labelText.includes(w))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

const token = (form: Record<string, string>, headers: Record<string, string> = {}) => postForm(`${t.url}/application/o/token/`, form, headers);

test('tracing is off without OTEL_EXPORTER_OTLP_ENDPOINT, and with OTEL_SDK_DISABLED or OTEL_TRACES_EXPORTER=none', () => {
  assert.equal(tracingEnabled(), false);
  assert.equal(tracingRequested({}), false);
  assert.equal(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }), true);
  assert.equal(tracingRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces' }), true);
  assert.equal(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_SDK_DISABLED: 'true' }), false);
  assert.equal(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_TRACES_EXPORTER: 'none' }), false);
});

test('token requests are counted by grant and outcome, with the caller\'s grant_type and client_id kept out of the labels', async () => {
  const provider = await seedMachineProvider(t);
  const { clientId, clientSecret } = await seedMachineClient(t, provider);
  const before = await metricsText();
  assert.equal((await token({ grant_type: 'client_credentials' }, { authorization: basic(clientId, clientSecret!) })).status, 200);
  assert.equal((await token({ grant_type: 'client_credentials' }, { authorization: basic(clientId, 'wrong') })).status, 401);
  const odd = `x-${unique('grant')}`;
  assert.equal((await token({ grant_type: odd })).body.error, 'unsupported_grant_type');
  const text = await metricsText();
  const delta = (labels: Record<string, string>) => sample(text, 'tessera_token_requests_total', labels) - sample(before, 'tessera_token_requests_total', labels);
  assert.equal(delta({ grant_type: 'client_credentials', outcome: 'issued' }), 1);
  assert.equal(delta({ grant_type: 'client_credentials', outcome: 'invalid_client' }), 1);
  assert.equal(delta({ grant_type: 'unsupported', outcome: 'unsupported_grant_type' }), 1);
  assert.ok(!text.includes(odd), 'a caller-chosen grant_type never becomes a label');
  assert.ok(!text.includes(clientId), 'no client_id in any label');
  // Store latency, by collection and operation.
  assert.ok(sample(text, 'tessera_store_operation_duration_seconds_count', { collection: 'clients', operation: 'findOne' }) > 0);
});

test('device flows are counted when approved, denied, exchanged', async () => {
  const provider = await seedProvider(t);
  const { clientId } = await seedClient(t, { providerId: provider.id });
  const user = await seedUser(t);
  const before = await metricsText();
  const approved = await startDevice(t, clientId);
  assert.equal((await decide(t, user.username, user.password, approved.user_code, 'allow')).status, 200);
  assert.equal((await poll(t, clientId, approved.device_code)).status, 200);
  const denied = await startDevice(t, clientId);
  assert.equal((await decide(t, user.username, user.password, denied.user_code, 'deny')).status, 200);
  assert.equal((await poll(t, clientId, denied.device_code)).body.error, 'access_denied');
  const text = await metricsText();
  const delta = (outcome: string) => sample(text, 'tessera_device_flow_outcomes_total', { outcome }) - sample(before, 'tessera_device_flow_outcomes_total', { outcome });
  assert.equal(delta('approved'), 1);
  assert.equal(delta('denied'), 1);
  assert.equal(delta('exchanged'), 1);
  const grant = 'urn:ietf:params:oauth:grant-type:device_code';
  assert.equal(sample(text, 'tessera_token_requests_total', { grant_type: grant, outcome: 'access_denied' })
    - sample(before, 'tessera_token_requests_total', { grant_type: grant, outcome: 'access_denied' }), 1);
});

test('a policy denial is counted by what the policy is bound to', async () => {
  const provider = await seedMachineProvider(t);
  const { client, clientId, clientSecret } = await seedMachineClient(t, provider);
  const policy = await t.server.services.policies.createPolicy({ name: unique('deny'), expression: 'false' });
  await t.server.services.policies.bind({ policyId: policy.id, targetType: 'CLIENT', targetId: client.id });
  const before = sample(await metricsText(), 'tessera_policy_denials_total', { target_type: 'CLIENT' });
  const refused = await token({ grant_type: 'client_credentials' }, { authorization: basic(clientId, clientSecret!) });
  assert.equal(refused.status, 400);
  assert.equal(sample(await metricsText(), 'tessera_policy_denials_total', { target_type: 'CLIENT' }) - before, 1);
});

test('a JWKS fetch that fails is counted', async () => {
  const now = new Date();
  const slug = unique('down');
  const source = await t.server.services.store.federatedSources.insert({
    id: crypto.randomUUID(), name: slug, slug, issuer: null, audience: null, jwksUrl: `http://127.0.0.1:${await freePort()}/jwks`,
    oidcDiscoveryUrl: null, jwks: null, keysFetchedAt: null, createdAt: now, updatedAt: now,
  } as never);
  const provider = await seedMachineProvider(t);
  await t.server.services.providers.update(provider.id, { federatedSourceIds: [(source as { id: string }).id] });
  const { clientId } = await seedMachineClient(t, provider, { type: 'PUBLIC' });
  const key = await signingKey();
  const iat = Math.floor(Date.now() / 1000);
  const jwt = await new SignJWT({ sub: 'x', aud: `${t.server.services.config.publicUrl}/application/o/token/` })
    .setProtectedHeader({ alg: 'ES256', kid: key.kid }).setIssuedAt(iat).setExpirationTime(iat + 300).sign(key.privateKey);
  const before = sample(await metricsText(), 'tessera_jwks_fetches_total', { result: 'failed' });
  const refused = await token({ grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: jwt });
  assert.equal(refused.body.error, 'invalid_grant');
  assert.ok(sample(await metricsText(), 'tessera_jwks_fetches_total', { result: 'failed' }) - before >= 1);
});

test('a rate-limit refusal (429) is counted by route', async () => {
  const user = await seedUser(t);
  const before = sample(await metricsText(), 'tessera_rate_limit_refusals_total', { route: '/device' });
  let refusals = 0;
  for (let i = 0; i < 25; i++) {
    const answer = await decide(t, user.username, user.password, 'BCDF-GHJK', 'allow');
    if (answer.status === 429) refusals += 1;
  }
  assert.ok(refusals > 0, 'the wrong-code limit answered 429');
  assert.equal(sample(await metricsText(), 'tessera_rate_limit_refusals_total', { route: '/device' }) - before, refusals);
});

test('every metric the Grafana dashboard in examples/ uses is in /metrics', async () => {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
  const dashboard = JSON.parse(readFileSync(path.join(root, 'examples/grafana-dashboard.json'), 'utf8')) as {
    panels: { title: string; targets?: { expr: string }[] }[];
  };
  const text = await metricsText();
  const exposed = new Set([...text.matchAll(/^# TYPE (\S+) (\w+)$/gm)].flatMap(([, name, type]) =>
    type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name!]));
  const used = new Set<string>();
  for (const panel of dashboard.panels) {
    for (const target of panel.targets ?? []) for (const [name] of target.expr.matchAll(/\btessera_[a-z0-9_]+/g)) used.add(name);
  }
  assert.ok(used.size >= 8, `the dashboard uses ${used.size} metrics`);
  for (const name of used) assert.ok(exposed.has(name), `${name} (in the dashboard) is not in /metrics`);
  for (const name of ['tessera_token_requests_total', 'tessera_device_flow_outcomes_total', 'tessera_policy_denials_total',
    'tessera_jwks_fetches_total', 'tessera_store_operation_duration_seconds_bucket', 'tessera_rate_limit_refusals_total']) {
    assert.ok(used.has(name), `the dashboard has a panel for ${name}`);
  }
});
