/**
 * node-oidc-provider as a benchmark target: bench/peer-server.ts in a child process, and how it
 * serves each of Tessera's scenarios (or null where it has no equivalent).
 */
import {
  FORM,
  basicAuth,
  collectDeviceCodes,
  form,
  freePort,
  progress,
  spawnServer,
  type BenchOptions,
  type Scenario,
  type ScenarioKey,
  type Target,
} from './lib.js';
import { dpopProofPool } from './dpop.js';

interface PeerReady {
  url: string;
  paths: { token: string; deviceAuthorization: string; introspection: string };
  clients: { 'cc-rs256': string; 'cc-es256': string; 'cc-opaque': string };
}

/**
 * Device codes the peer's poll scenario cycles through. Its default in-memory adapter is an LRU of
 * about 1,000 entries (a device authorization takes two: the code and its user code), so more codes
 * would be evicted and answer invalid_grant; it never answers slow_down, so spacing does not change
 * its answers.
 */
const PEER_POLL_CODES = 300;

export async function startPeer(options: BenchOptions): Promise<Target> {
  const port = await freePort();
  const child = spawnServer('peer', ['dist/bench/peer-server.js', String(port)], { PATH: process.env.PATH, HOME: process.env.HOME }, options.serverNodeArgs);
  let ready: PeerReady;
  try {
    ready = JSON.parse((await child.waitForLine('PEER_READY ')).slice('PEER_READY '.length)) as PeerReady;
  } catch (error) {
    await child.stop();
    throw error;
  }
  const { url, paths, clients } = ready;
  progress(`peer: node-oidc-provider listening at ${url} (pid ${child.pid})`);

  const requireAccessToken = (status: number, body: string) =>
    /"access_token"\s*:/.test(body) ? null : `no access_token in the answer (${status} ${body.slice(0, 200)})`;
  const clientCredentials = (clientId: 'cc-rs256' | 'cc-es256', key: ScenarioKey, note?: string): Scenario => {
    const scenario: Scenario = {
      key,
      method: 'POST',
      path: paths.token,
      headers: { 'content-type': FORM, authorization: basicAuth(clientId, clients[clientId]) },
      body: form({ grant_type: 'client_credentials' }),
      expect: { status: 200 },
      check: requireAccessToken,
    };
    if (note) scenario.note = note;
    return scenario;
  };
  const noAppPasswords = 'no app passwords or password grant in the peer: its client_credentials with the client secret';

  const deviceAuthorization: Scenario = {
    key: 'device-authorization',
    method: 'POST',
    path: paths.deviceAuthorization,
    headers: { 'content-type': FORM },
    body: form({ client_id: 'device' }),
    expect: { status: 200 },
    check: (status, body) => (/"device_code"\s*:/.test(body) ? null : `no device_code in the answer (${status} ${body.slice(0, 200)})`),
  };

  const devicePoll: Scenario = {
    key: 'device-poll',
    method: 'POST',
    path: paths.token,
    headers: { 'content-type': FORM },
    bodies: [],
    note: `${PEER_POLL_CODES} codes round-robin (its in-memory adapter keeps about 1,000 entries)`,
    expect: { status: 400, error: 'authorization_pending', tolerated: ['slow_down'] },
    async prepare() {
      const count = PEER_POLL_CODES;
      progress(`peer: making ${count} device codes to poll…`);
      const codes = await collectDeviceCodes(url, deviceAuthorization, count, options.connections);
      devicePoll.bodies = codes.map((code) => form({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: code, client_id: 'device' }));
    },
  };

  const opaqueAuth = basicAuth('cc-opaque', clients['cc-opaque']);
  const introspection: Scenario = {
    key: 'introspection',
    note: 'an opaque client_credentials token (the peer does not introspect JWT access tokens)',
    method: 'POST',
    path: paths.introspection,
    headers: { 'content-type': FORM, authorization: opaqueAuth },
    expect: { status: 200 },
    check: (status, body) => (/"active"\s*:\s*true/.test(body) ? null : `introspection did not find the fresh token active (${status} ${body.slice(0, 200)})`),
    async prepare() {
      const response = await fetch(url + paths.token, {
        method: 'POST',
        headers: { 'content-type': FORM, authorization: opaqueAuth },
        body: form({ grant_type: 'client_credentials' }),
      });
      const text = await response.text();
      const token = /"access_token"\s*:\s*"([^"]+)"/.exec(text)?.[1];
      if (!token) throw new Error(`peer introspection: could not get a fresh access token (${response.status} ${text.slice(0, 200)})`);
      introspection.body = form({ token });
    },
  };

  const scenarios: Record<ScenarioKey, Scenario | null> = {
    'cc-apppw-rs256': clientCredentials('cc-rs256', 'cc-apppw-rs256', noAppPasswords),
    'cc-secret-rs256': clientCredentials('cc-rs256', 'cc-secret-rs256'),
    'cc-apppw-es256': clientCredentials('cc-es256', 'cc-apppw-es256', noAppPasswords),
    'cc-secret-es256': clientCredentials('cc-es256', 'cc-secret-es256'),
    'cc-dpop-es256': {
      ...clientCredentials('cc-es256', 'cc-dpop-es256', 'features.dPoP on (proofs checked, jti remembered in its in-memory cache)'),
      proofs: await dpopProofPool(`${url}${paths.token}`),
      check: (status, body) => (/"token_type"\s*:\s*"DPoP"/.test(body) ? null : `not a DPoP token (${status} ${body.slice(0, 200)})`),
    },
    'device-authorization': deviceAuthorization,
    'device-poll': devicePoll,
    introspection,
    'graphql-users': null,
    // The peer has no token exchange: the row compares against its client_credentials at the same algorithm.
    'token-exchange-rs256': clientCredentials('cc-rs256', 'token-exchange-rs256', 'no token exchange: client_credentials with the client secret, RS256'),
  };

  return { name: 'peer', url, child, scenario: (key) => scenarios[key], stop: () => child.stop() };
}
