/**
 * OpenTelemetry traces, exported over OTLP/HTTP to a real receiver on loopback: one span per
 * request named by endpoint and grant, child spans for store calls, JWT signing and verification
 * and policy evaluation, the request id and client_id as attributes, and no secret anywhere in
 * what leaves the process.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { basic, freePort, postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { seedMachineClient, seedMachineProvider, unique } from '../helpers/seed.js';
import { JWT_BEARER, signingKey } from '../helpers/federation.js';
import { attribute, startOtlpReceiver, type OtlpReceiver, type OtlpSpan } from '../helpers/otlp-receiver.js';

let receiver: OtlpReceiver;
let t: TestServer;
const secrets: string[] = [];
let tokenRequestId = '';
let introspectRequestId = '';
let clientId = '';
let assertionRequestId = '';
let sourceIssuer = '';

before(async () => {
  receiver = await startOtlpReceiver();
  // The standard variables, read by the SDK itself (this test file is its own process).
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url;
  process.env.OTEL_SERVICE_NAME = 'tessera-under-test';
  process.env.OTEL_BSP_SCHEDULE_DELAY = '50';
  t = await startTestServer();
  secrets.push(t.adminToken);
  const provider = await seedMachineProvider(t);
  const seeded = await seedMachineClient(t, provider, { allowedScopes: ['read'] });
  clientId = seeded.clientId;
  secrets.push(seeded.clientSecret!);
  const issued = await postForm(`${t.url}/application/o/token/`, { grant_type: 'client_credentials', scope: 'read' }, { authorization: basic(clientId, seeded.clientSecret!) });
  assert.equal(issued.status, 200, JSON.stringify(issued.body));
  tokenRequestId = issued.headers.get('x-request-id')!;
  const accessToken = issued.body.access_token as string;
  secrets.push(accessToken, ...accessToken.split('.'));
  const introspected = await postForm(`${t.url}/application/o/introspect/`, { token: accessToken }, { authorization: basic(clientId, seeded.clientSecret!) });
  assert.equal(introspected.status, 200);
  assert.equal(introspected.body.active, true);
  introspectRequestId = introspected.headers.get('x-request-id')!;
  // A failed attempt with a wrong secret must not leak the wrong secret either.
  const wrong = 'wrong-secret-that-must-not-leak-0123';
  secrets.push(wrong);
  const refused = await postForm(`${t.url}/application/o/token/`, { grant_type: 'client_credentials' }, { authorization: basic(clientId, wrong) });
  assert.equal(refused.status, 401);
  // A federated JWT whose source's JWKS cannot be fetched: a jwks fetch span, marked as an error.
  const now = new Date();
  const slug = unique('down');
  sourceIssuer = `https://issuer.example/${slug}`;
  const source = await t.server.services.store.federatedSources.insert({
    id: crypto.randomUUID(), name: slug, slug, issuer: sourceIssuer, audience: null, jwksUrl: `http://127.0.0.1:${await freePort()}/jwks`,
    oidcDiscoveryUrl: null, jwks: null, keysFetchedAt: null, createdAt: now, updatedAt: now,
  } as never) as { id: string };
  await t.server.services.providers.update(provider.id, { federatedSourceIds: [source.id] });
  const workload = await seedMachineClient(t, provider, { type: 'PUBLIC' });
  const key = await signingKey();
  const iat = Math.floor(Date.now() / 1000);
  const assertion = await new SignJWT({ sub: 'job', iss: sourceIssuer, aud: `${t.server.services.config.publicUrl}/application/o/token/` })
    .setProtectedHeader({ alg: 'ES256', kid: key.kid }).setIssuedAt(iat).setExpirationTime(iat + 300).sign(key.privateKey);
  secrets.push(assertion, ...assertion.split('.'));
  const federated = await postForm(`${t.url}/application/o/token/`, {
    grant_type: 'client_credentials', client_id: workload.clientId, client_assertion_type: JWT_BEARER, client_assertion: assertion,
  });
  assert.equal(federated.body.error, 'invalid_grant');
  assertionRequestId = federated.headers.get('x-request-id')!;
  // Stopping flushes the batch to the receiver.
  await t.stop();
});

after(async () => {
  await receiver.close();
});

function requestSpan(requestId: string): OtlpSpan {
  const found = receiver.spans().filter((s) => attribute(s, 'tessera.request_id') === requestId);
  assert.equal(found.length, 1, `one span for request ${requestId}: ${receiver.spans().map((s) => s.name).join(', ')}`);
  return found[0]!;
}

const childrenOf = (parent: OtlpSpan) => receiver.spans().filter((s) => s.parentSpanId === parent.spanId && s.traceId === parent.traceId);

test('the token request is one server span named by endpoint and grant, with the request id and client_id', () => {
  const span = requestSpan(tokenRequestId);
  assert.equal(span.name, 'POST /application/o/token client_credentials');
  assert.equal(span.kind, 2, 'SPAN_KIND_SERVER');
  assert.ok(!span.parentSpanId, 'a root span');
  assert.equal(attribute(span, 'oauth.client_id'), clientId);
  assert.equal(attribute(span, 'oauth.grant_type'), 'client_credentials');
  // The route pattern, as in tessera_http_requests_total's route label (both slash forms match it).
  assert.equal(attribute(span, 'http.route'), '/application/o/token');
  assert.equal(attribute(span, 'http.response.status_code'), 200);
  assert.ok(receiver.resourceAttributes().some((a) => a.key === 'service.name' && a.value.stringValue === 'tessera-under-test'), 'OTEL_SERVICE_NAME is honoured');
});

test('store calls, JWT signing and policy evaluation are children of the token request', () => {
  const names = childrenOf(requestSpan(tokenRequestId)).map((s) => s.name);
  assert.ok(names.includes('store clients.findOne'), names.join(', '));
  assert.ok(names.includes('jwt sign'), names.join(', '));
  assert.ok(names.includes('policy evaluate'), names.join(', '));
  const store = childrenOf(requestSpan(tokenRequestId)).find((s) => s.name === 'store clients.findOne')!;
  assert.equal(attribute(store, 'db.collection.name'), 'clients');
  assert.equal(attribute(store, 'db.operation.name'), 'findOne');
  // A store call made by the policy evaluation nests under it, not under the request.
  const policy = childrenOf(requestSpan(tokenRequestId)).find((s) => s.name === 'policy evaluate')!;
  assert.ok(childrenOf(policy).every((s) => s.name.startsWith('store ')));
});

test('introspection verifies the JWT in a child span', () => {
  const span = requestSpan(introspectRequestId);
  assert.equal(span.name, 'POST /application/o/introspect');
  assert.ok(childrenOf(span).some((s) => s.name === 'jwt verify'), childrenOf(span).map((s) => s.name).join(', '));
});

test('a JWKS fetch is a span under the request that needed it, marked as an error when it fails', () => {
  const request = requestSpan(assertionRequestId);
  const descendants = (span: OtlpSpan): OtlpSpan[] => childrenOf(span).flatMap((c) => [c, ...descendants(c)]);
  const fetches = descendants(request).filter((s) => s.name === 'jwks fetch');
  assert.equal(fetches.length, 1, descendants(request).map((s) => s.name).join(', '));
  assert.equal(attribute(fetches[0]!, 'tessera.source.issuer'), sourceIssuer);
  assert.equal(fetches[0]!.status?.code, 2, 'STATUS_CODE_ERROR');
});

test('no secret, token or token part appears anywhere in the exported payloads', () => {
  assert.ok(receiver.payloads.length > 0);
  const all = receiver.payloads.join('\n');
  for (const secret of secrets) assert.ok(!all.includes(secret), `a secret (${secret.slice(0, 6)}…) was exported`);
  assert.ok(!/authorization|basic /i.test(all.replace(/oauth\./g, '')), 'no authorization header value or name');
});
