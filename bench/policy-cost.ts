/**
 * `npm run bench:policy`: what a bound expression policy costs per token request. A script, not a
 * test: it runs on 127.0.0.1 only, for a bounded time.
 *
 * 1. In process, no HTTP: PolicyService.evaluateTokenPolicies for a provider and client with no
 *    policy, then with the Kubernetes walk-through's policy bound (bindings cached, expression
 *    compiled once), and the CEL evaluation alone. µs per call, median of 5 runs of N calls.
 * 2. Over HTTP (skipped with POLICY_BENCH_HTTP=0): autocannon on client_credentials (the client's
 *    own secret) without and then with a policy bound to the provider, POLICY_BENCH_SECONDS each
 *    (default 3), POLICY_BENCH_CONNECTIONS (default 10). On a shared machine the HTTP difference is
 *    within noise; the in-process figure is the cost.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/http/logger.js';
import { startServer } from '../src/server.js';
import type { Services } from '../src/domain/services.js';
import { freePort } from '../test/helpers/server.js';

const N = Number(process.env.POLICY_BENCH_N ?? 20_000);
const SECONDS = Number(process.env.POLICY_BENCH_SECONDS ?? 3);
const CONNECTIONS = Number(process.env.POLICY_BENCH_CONNECTIONS ?? 10);
const BOOTSTRAP = 'policy-bench-admin-token-0123456789';
const POLICY = 'request.context.oauth_jwt.iss == "https://my.issuer" && "kubernetes" in request.context.oauth_scopes';

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function microsPerCall(fn: () => unknown | Promise<unknown>): Promise<number> {
  for (let i = 0; i < 1_000; i++) await fn();
  const runs: number[] = [];
  for (let r = 0; r < 5; r++) {
    const start = performance.now();
    for (let i = 0; i < N; i++) await fn();
    runs.push(((performance.now() - start) * 1000) / N);
  }
  return median(runs);
}

async function inProcess(services: Services): Promise<void> {
  const provider = await services.providers.create({ name: 'bench', slug: 'bench-inproc' });
  const { client } = await services.clients.create({
    providerId: provider.id, name: 'bench', type: 'CONFIDENTIAL', grantTypes: ['CLIENT_CREDENTIALS'], allowedScopes: [], clientId: 'bench-inproc',
  });
  const user = await services.users.create({ username: 'bench-inproc-user', type: 'SERVICE_ACCOUNT', attributes: { kubernetes_namespace: 'ci' } });
  const input = {
    provider, client, user, grantType: 'client_credentials', scopes: ['kubernetes'], requestId: null,
    jwtClaims: { iss: 'https://my.issuer', sub: 'system:serviceaccount:ci:runner', 'kubernetes.io': { namespace: 'ci' } },
  };

  const none = await microsPerCall(() => services.policies.evaluateTokenPolicies(input));
  const policy = await services.policies.createPolicy({ name: 'bench policy', expression: POLICY });
  await services.policies.bind({ policyId: policy.id, targetType: 'PROVIDER', targetId: provider.id });
  const decision = await services.policies.evaluateTokenPolicies(input);
  if (!decision.allowed) throw new Error(`the bench policy denied: ${decision.reason}`);
  const one = await microsPerCall(() => services.policies.evaluateTokenPolicies(input));

  const engine = services.policies.engine;
  const compiled = engine.compile('policy', POLICY);
  const variables = { request: { context: { oauth_jwt: input.jwtClaims, oauth_scopes: input.scopes } } };
  const celOnly = await microsPerCall(() => engine.evaluate(compiled, variables));

  console.log(`in process, ${N} calls x 5 runs (median):`);
  console.log(`  evaluateTokenPolicies, no policy bound:   ${none.toFixed(2)} µs per token request`);
  console.log(`  evaluateTokenPolicies, 1 policy bound:    ${one.toFixed(2)} µs per token request`);
  console.log(`  CEL evaluation alone (bounded):           ${celOnly.toFixed(2)} µs`);
  console.log(`  => a bound policy adds ${(one - none).toFixed(2)} µs per token request`);
}

async function cannon(url: string, body: string, authorization: string): Promise<{ rps: number; p99: number; non2xx: number }> {
  const result = await autocannon({
    url, connections: CONNECTIONS, duration: SECONDS, method: 'POST', timeout: 10,
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization }, body,
  });
  return { rps: result.requests.average, p99: result.latency.p99, non2xx: result.non2xx };
}

async function overHttp(url: string, services: Services): Promise<void> {
  const provider = await services.providers.create({ name: 'bench http', slug: 'bench-http' });
  const { client, clientSecret } = await services.clients.create({
    providerId: provider.id, name: 'bench http', type: 'CONFIDENTIAL', grantTypes: ['CLIENT_CREDENTIALS'], allowedScopes: [], clientId: 'bench-http',
  });
  const tokenUrl = `${url}/application/o/token/`;
  const body = 'grant_type=client_credentials';
  const authorization = `Basic ${Buffer.from(`${client.clientId}:${clientSecret}`).toString('base64')}`;
  // Warm up (creates the generated service account, fills the caches).
  await cannon(tokenUrl, body, authorization);
  const without = await cannon(tokenUrl, body, authorization);
  const policy = await services.policies.createPolicy({ name: 'bench http policy', expression: 'request.client.client_id == "bench-http" && request.context.oauth_grant_type == "client_credentials"' });
  await services.policies.bind({ policyId: policy.id, targetType: 'PROVIDER', targetId: provider.id });
  const withPolicy = await cannon(tokenUrl, body, authorization);
  console.log(`over HTTP, client_credentials, ${SECONDS} s x ${CONNECTIONS} connections:`);
  console.log(`  no policy:       ${without.rps.toFixed(0)} req/s, p99 ${without.p99} ms, non-2xx ${without.non2xx}`);
  console.log(`  1 policy bound:  ${withPolicy.rps.toFixed(0)} req/s, p99 ${withPolicy.p99} ms, non-2xx ${withPolicy.non2xx}`);
}

async function main(): Promise<void> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'tessera-policy-bench-'));
  const port = await freePort();
  const config = loadConfig({ PORT: String(port), HOST: '127.0.0.1', TESSERA_DATA_DIR: dataDir, TESSERA_BOOTSTRAP_TOKEN: BOOTSTRAP, TESSERA_LOG_LEVEL: 'silent' });
  const server = await startServer(config, createLogger(config.logLevel));
  try {
    await inProcess(server.services);
    if (process.env.POLICY_BENCH_HTTP !== '0') await overHttp(server.url, server.services);
  } finally {
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
