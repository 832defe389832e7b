/**
 * Tessera as a benchmark target: `node dist/src/main.js` in a child process on the embedded store
 * in a temp dir, seeded through the admin GraphQL API exactly as an admin's script would.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import {
  FORM,
  basicAuth,
  collectDeviceCodes,
  deviceCodesNeeded,
  form,
  freePort,
  progress,
  spawnServer,
  waitForHttp,
  type BenchOptions,
  type Scenario,
  type ScenarioKey,
  type Target,
} from './lib.js';
import { dpopProofPool } from './dpop.js';

const TOKEN_PATH = '/application/o/token/';
const DEVICE_PATH = '/application/o/device/';
const INTROSPECT_PATH = '/application/o/introspect/';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
/** Distinct workloads whose projected tokens the exchange scenario cycles through. */
const EXCHANGE_SUBJECTS = 50;
/** The shortest poll interval the contract allows: fewer codes are needed to poll without slow_down. */
const POLL_INTERVAL_SECONDS = 1;

export class SeedError extends Error {}

interface GraphQLAnswer {
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

function graphqlClient(url: string, token: string) {
  return async <T>(query: string, variables: Record<string, unknown> = {}): Promise<T> => {
    const response = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    const text = await response.text();
    let answer: GraphQLAnswer;
    try {
      answer = JSON.parse(text) as GraphQLAnswer;
    } catch {
      throw new SeedError(`POST /graphql answered ${response.status} with non-JSON: ${text.slice(0, 200)}`);
    }
    if (answer.errors?.length) {
      const missing = answer.errors.map((e) => /Cannot query field "(\w+)" on type "Mutation"/.exec(e.message)?.[1]).filter(Boolean);
      if (missing.length > 0) {
        throw new SeedError(`the admin API has no ${missing.join(', ')} mutation yet, so the benchmark cannot seed its clients and users (contract: admin.graphql)`);
      }
      throw new SeedError(`GraphQL errors while seeding: ${JSON.stringify(answer.errors).slice(0, 500)}`);
    }
    return answer.data as T;
  };
}

interface Seed {
  rs256: { clientId: string; clientSecret: string };
  es256: { clientId: string; clientSecret: string };
  deviceClientId: string;
  username: string;
  appPassword: string;
  exchange: { clientId: string; clientSecret: string; subjectTokens: string[] };
}

/**
 * A stand-in cluster (its ES256 key made here) as a federated source of the RS256 provider, a
 * confidential TOKEN_EXCHANGE client, and projected-token-like JWTs of distinct service accounts.
 */
async function seedExchange(gql: ReturnType<typeof graphqlClient>, providerId: string, client: (providerId: string, type: 'CONFIDENTIAL', grantTypes: string[], clientId: string) => Promise<{ clientId: string; clientSecret: string }>) {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench-cluster', alg: 'ES256' };
  const issuer = 'https://bench-cluster.example';
  const source = await gql<{ createFederatedSource: { id: string } }>(
    `mutation($input: CreateFederatedSourceInput!) { createFederatedSource(input: $input) { id } }`,
    { input: { name: 'bench cluster', slug: 'bench-cluster', issuer, audience: 'tessera', jwks: { keys: [jwk] } } },
  );
  await gql(`mutation($id: ID!, $input: UpdateProviderInput!) { updateProvider(id: $id, input: $input) { id } }`,
    { id: providerId, input: { federatedSourceIds: [source.createFederatedSource.id] } });
  const exchangeClient = await client(providerId, 'CONFIDENTIAL', ['TOKEN_EXCHANGE'], 'bench-exchange-rs256');
  const now = Math.floor(Date.now() / 1000);
  const subjectTokens = await Promise.all(Array.from({ length: EXCHANGE_SUBJECTS }, (_, i) =>
    new SignJWT({ iss: issuer, aud: 'tessera', sub: `system:serviceaccount:bench:workload-${i}` })
      .setProtectedHeader({ alg: 'ES256', kid: 'bench-cluster', typ: 'JWT' }).setIssuedAt(now).setExpirationTime(now + 3600).sign(privateKey)));
  return { ...exchangeClient, subjectTokens };
}

async function seed(url: string, adminToken: string, users: number): Promise<Seed> {
  const gql = graphqlClient(url, adminToken);
  const provider = async (alg: 'RS256' | 'ES256') => {
    const data = await gql<{ createProvider: { id: string } }>(
      `mutation($input: CreateProviderInput!) { createProvider(input: $input) { id } }`,
      { input: { name: `bench ${alg}`, slug: `bench-${alg.toLowerCase()}`, signingAlgorithm: alg, deviceFlow: { pollIntervalSeconds: POLL_INTERVAL_SECONDS } } },
    );
    return data.createProvider.id;
  };
  const client = async (providerId: string, type: 'CONFIDENTIAL' | 'PUBLIC', grantTypes: string[], clientId: string) => {
    const data = await gql<{ createClient: { client: { clientId: string }; clientSecret: string | null } }>(
      `mutation($input: CreateClientInput!) { createClient(input: $input) { client { clientId } clientSecret } }`,
      { input: { providerId, name: clientId, type, grantTypes, clientId } },
    );
    return { clientId: data.createClient.client.clientId, clientSecret: data.createClient.clientSecret ?? '' };
  };

  const rs256Provider = await provider('RS256');
  const es256Provider = await provider('ES256');
  const rs256 = await client(rs256Provider, 'CONFIDENTIAL', ['CLIENT_CREDENTIALS'], 'bench-cc-rs256');
  const es256 = await client(es256Provider, 'CONFIDENTIAL', ['CLIENT_CREDENTIALS'], 'bench-cc-es256');
  const device = await client(es256Provider, 'PUBLIC', ['DEVICE_CODE'], 'bench-device');

  const username = 'bench-user';
  const user = await gql<{ createUser: { id: string } }>(`mutation($input: CreateUserInput!) { createUser(input: $input) { id } }`, {
    input: { username, name: 'Benchmark user' },
  });
  const appPassword = await gql<{ createAppPassword: { secret: string } }>(
    `mutation($input: CreateAppPasswordInput!) { createAppPassword(input: $input) { secret } }`,
    { input: { userId: user.createUser.id, description: 'benchmark' } },
  );

  // Users for the GraphQL page, 100 per request (aliases), so seeding stays a few seconds.
  for (let start = 0; start < users; start += 100) {
    const count = Math.min(100, users - start);
    const fields = Array.from({ length: count }, (_, i) => {
      const n = start + i;
      return `u${n}: createUser(input: { username: "bench-${String(n).padStart(6, '0')}", name: "Bench User ${n}", email: "bench-${n}@example.test" }) { id }`;
    });
    await gql(`mutation { ${fields.join('\n')} }`);
  }

  const exchange = await seedExchange(gql, rs256Provider, client);
  return { rs256, es256, deviceClientId: device.clientId, username, appPassword: appPassword.createAppPassword.secret, exchange };
}

function requireActive(status: number, body: string): string | null {
  return /"active"\s*:\s*true/.test(body) ? null : `introspection did not find the fresh token active (${status} ${body.slice(0, 200)})`;
}

function requireDpopToken(status: number, body: string): string | null {
  return /"token_type"\s*:\s*"DPoP"/.test(body) ? null : `not a DPoP token (${status} ${body.slice(0, 200)})`;
}

function requireAccessToken(status: number, body: string): string | null {
  return /"access_token"\s*:/.test(body) ? null : `no access_token in the answer (${status} ${body.slice(0, 200)})`;
}

export async function startTessera(options: BenchOptions): Promise<Target> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'tessera-bench-'));
  const port = await freePort();
  const adminToken = `bench-${randomBytes(24).toString('base64url')}`;
  const url = `http://127.0.0.1:${port}`;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PORT: String(port),
    HOST: '127.0.0.1',
    TESSERA_PUBLIC_URL: url,
    TESSERA_DATA_DIR: dataDir,
    TESSERA_BOOTSTRAP_TOKEN: adminToken,
    TESSERA_LOG_LEVEL: 'warn',
    // The benchmark sends thousands of device authorizations a second from one address; the
    // per-address limit (default 60 a minute) would answer nearly all of them 429. Raised here only.
    TESSERA_DEVICE_AUTHORIZATIONS_PER_MINUTE: '999999',
    // TESSERA_DURABILITY=full npm run bench:compare measures the fsync-per-write mode.
    ...(process.env.TESSERA_DURABILITY ? { TESSERA_DURABILITY: process.env.TESSERA_DURABILITY } : {}),
  };
  const child = spawnServer('tessera', ['dist/src/main.js'], env, options.serverNodeArgs);
  const cleanup = async () => {
    await child.stop();
    await rm(dataDir, { recursive: true, force: true });
  };
  let seeded: Seed;
  try {
    await waitForHttp(`${url}/healthz`, child);
    progress(`tessera: listening at ${url} (pid ${child.pid}, data ${dataDir}); seeding ${options.users} users…`);
    seeded = await seed(url, adminToken, options.users);
  } catch (error) {
    await cleanup();
    throw error;
  }
  const { rs256, es256, deviceClientId, username, appPassword, exchange } = seeded;

  const clientCredentials = (client: Seed['rs256'], rule: 'app password' | 'client secret'): Scenario => ({
    key: 'cc-secret-rs256',
    method: 'POST',
    path: TOKEN_PATH,
    headers:
      rule === 'client secret'
        ? { 'content-type': FORM, authorization: basicAuth(client.clientId, client.clientSecret) }
        : { 'content-type': FORM },
    body:
      rule === 'client secret'
        ? form({ grant_type: 'client_credentials' })
        : form({ grant_type: 'client_credentials', client_id: client.clientId, username, password: appPassword }),
    expect: { status: 200 },
    check: requireAccessToken,
  });

  const deviceAuthorization: Scenario = {
    key: 'device-authorization',
    method: 'POST',
    path: DEVICE_PATH,
    headers: { 'content-type': FORM },
    body: form({ client_id: deviceClientId }),
    expect: { status: 200 },
    check: (status, body) => (/"device_code"\s*:/.test(body) ? null : `no device_code in the answer (${status} ${body.slice(0, 200)})`),
    note: 'all from one address, so the server runs with TESSERA_DEVICE_AUTHORIZATIONS_PER_MINUTE=999999 (default 60)',
  };

  const devicePoll: Scenario = {
    key: 'device-poll',
    method: 'POST',
    path: TOKEN_PATH,
    headers: { 'content-type': FORM },
    bodies: [],
    expect: { status: 400, error: 'authorization_pending', tolerated: ['slow_down'] },
    async prepare(hints) {
      const count = deviceCodesNeeded(hints, POLL_INTERVAL_SECONDS);
      progress(`tessera: making ${count} device codes to poll…`);
      const codes = await collectDeviceCodes(url, deviceAuthorization, count, options.connections);
      devicePoll.bodies = codes.map((code) => form({ grant_type: DEVICE_GRANT, device_code: code, client_id: deviceClientId }));
    },
  };

  const introspectionAuth = basicAuth(es256.clientId, es256.clientSecret);
  const introspection: Scenario = {
    key: 'introspection',
    note: 'a JWT access token (client_credentials, client secret, ES256)',
    method: 'POST',
    path: INTROSPECT_PATH,
    headers: { 'content-type': FORM, authorization: introspectionAuth },
    expect: { status: 200 },
    check: requireActive,
    async prepare() {
      const response = await fetch(url + TOKEN_PATH, {
        method: 'POST',
        headers: { 'content-type': FORM, authorization: introspectionAuth },
        body: form({ grant_type: 'client_credentials' }),
      });
      const text = await response.text();
      const token = /"access_token"\s*:\s*"([^"]+)"/.exec(text)?.[1];
      if (!token) throw new Error(`introspection: could not get a fresh access token (${response.status} ${text.slice(0, 200)})`);
      introspection.body = form({ token });
    },
  };

  const usersPage: Scenario = {
    key: 'graphql-users',
    note: `${options.users} users seeded`,
    method: 'POST',
    path: '/graphql',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
    body: JSON.stringify({
      // A literal page size: the admin API's cost limit prices a variable `first` at the largest page.
      query: '{ users(first: 20) { totalCount edges { cursor node { id username name email type isActive isAdmin createdAt } } pageInfo { hasNextPage endCursor } } }',
    }),
    expect: { status: 200 },
    check: (status, body) => (/"errors"\s*:/.test(body) || !/"users"\s*:/.test(body) ? `the users query failed (${status} ${body.slice(0, 300)})` : null),
  };

  const tokenExchange: Scenario = {
    key: 'token-exchange-rs256',
    note: `${EXCHANGE_SUBJECTS} workloads' JWTs round-robin: each exchange verifies one ES256 JWT, updates its generated account and signs one RS256 token`,
    method: 'POST',
    path: TOKEN_PATH,
    headers: { 'content-type': FORM, authorization: basicAuth(exchange.clientId, exchange.clientSecret) },
    bodies: exchange.subjectTokens.map((token) => form({
      grant_type: TOKEN_EXCHANGE, subject_token: token, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    })),
    expect: { status: 200 },
    check: requireAccessToken,
  };

  const scenarios: Record<ScenarioKey, Scenario> = {
    'cc-apppw-rs256': { ...clientCredentials(rs256, 'app password'), key: 'cc-apppw-rs256' },
    'cc-secret-rs256': { ...clientCredentials(rs256, 'client secret'), key: 'cc-secret-rs256' },
    'cc-apppw-es256': { ...clientCredentials(es256, 'app password'), key: 'cc-apppw-es256' },
    'cc-secret-es256': { ...clientCredentials(es256, 'client secret'), key: 'cc-secret-es256' },
    'cc-dpop-es256': { ...clientCredentials(es256, 'client secret'), key: 'cc-dpop-es256', proofs: await dpopProofPool(`${url}${TOKEN_PATH}`), check: requireDpopToken },
    'device-authorization': deviceAuthorization,
    'device-poll': devicePoll,
    introspection,
    'graphql-users': usersPage,
    'token-exchange-rs256': tokenExchange,
  };

  return {
    name: 'tessera',
    url,
    child,
    scenario: (key) => scenarios[key],
    stop: cleanup,
  };
}
