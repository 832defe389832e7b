/**
 * The comparison peer for `npm run bench:compare`: node-oidc-provider 9 (devDependency
 * `oidc-provider`), configured as close to Tessera's benchmarked endpoints as it allows, in its
 * default in-memory adapter. Run as a child process by bench/peer.ts:
 *
 *   node dist/bench/peer-server.js <port>
 *
 * When it listens it prints one line `PEER_READY <json>` on stdout with its URL, endpoint paths
 * and the clients' credentials (generated per run; this is a throwaway benchmark server).
 *
 * Configuration, by feature (see the notes at the top of bench/compare.ts for what still differs):
 * - clientCredentials: on. Clients `cc-rs256` and `cc-es256` get JWT access tokens through
 *   resourceIndicators (a default resource per client whose resource server says
 *   accessTokenFormat 'jwt' and signs with RS256 resp. ES256); `cc-opaque` gets no default
 *   resource and so an opaque token, the only kind its introspection endpoint answers for.
 * - deviceFlow: on; `device` is a public client (token_endpoint_auth_method none).
 * - introspection: on; callers authenticate with client_secret_basic.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';

/** The few parts of oidc-provider's API used here (the package ships no type declarations). */
interface PeerClient {
  clientId: string;
}
interface PeerProvider {
  callback(): http.RequestListener;
  on(event: string, listener: (...args: unknown[]) => void): void;
}
type PeerProviderConstructor = new (issuer: string, configuration: Record<string, unknown>) => PeerProvider;

const RESOURCES: Record<string, { alg: 'RS256' | 'ES256' }> = {
  'urn:tessera-bench:rs256': { alg: 'RS256' },
  'urn:tessera-bench:es256': { alg: 'ES256' },
};
const DEFAULT_RESOURCE: Record<string, string> = {
  'cc-rs256': 'urn:tessera-bench:rs256',
  'cc-es256': 'urn:tessera-bench:es256',
};

async function signingKey(alg: 'RS256' | 'ES256'): Promise<Record<string, unknown>> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { ...(await exportJWK(privateKey)), alg, use: 'sig', kid: `${alg.toLowerCase()}-${randomBytes(4).toString('hex')}` };
}

async function main(): Promise<void> {
  const port = Number(process.argv[2] ?? '0');
  const host = '127.0.0.1';
  // Imported by name: the package is ESM without declarations; the interface above types what is used.
  const moduleName = 'oidc-provider';
  const Provider = ((await import(moduleName)) as { default: PeerProviderConstructor }).default;

  const secret = () => randomBytes(32).toString('base64url');
  const secrets = { 'cc-rs256': secret(), 'cc-es256': secret(), 'cc-opaque': secret() };
  const confidential = (clientId: keyof typeof secrets) => ({
    client_id: clientId,
    client_secret: secrets[clientId],
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  });

  const server = http.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const url = `http://${host}:${(server.address() as AddressInfo).port}`;

  const provider = new Provider(url, {
    clients: [
      confidential('cc-rs256'),
      confidential('cc-es256'),
      confidential('cc-opaque'),
      {
        client_id: 'device',
        grant_types: ['urn:ietf:params:oauth:grant-type:device_code'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'none',
      },
    ],
    jwks: { keys: [await signingKey('RS256'), await signingKey('ES256')] },
    cookies: { keys: [secret()] },
    scopes: ['openid', 'offline_access', 'api'],
    // Tessera's defaults: 600 s access tokens and device codes.
    ttl: { AccessToken: 600, ClientCredentials: 600, DeviceCode: 600, Grant: 600, IdToken: 600, Interaction: 600, Session: 600 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      deviceFlow: { enabled: true },
      introspection: { enabled: true },
      // RFC 9449, for the DPoP scenario: proofs are checked when a client sends one (no nonces, as Tessera's default).
      dPoP: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx: unknown, client: PeerClient, oneOf?: string | string[]) => oneOf ?? DEFAULT_RESOURCE[client.clientId],
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx: unknown, resourceIndicator: string) => {
          const resource = RESOURCES[resourceIndicator];
          if (!resource) throw new Error(`unknown resource ${resourceIndicator}`);
          return { scope: 'api', accessTokenTTL: 600, accessTokenFormat: 'jwt', jwt: { sign: { alg: resource.alg } } };
        },
      },
    },
  });
  // Errors it answers (4xx) are part of the benchmark; only server errors are worth a line.
  provider.on('server_error', (_ctx: unknown, error: unknown) => process.stderr.write(`peer: server_error ${String(error)}\n`));
  server.on('request', provider.callback());

  const shutdown = () => server.close(() => process.exit(0));
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);

  process.stdout.write(
    `PEER_READY ${JSON.stringify({
      url,
      paths: { token: '/token', deviceAuthorization: '/device/auth', introspection: '/token/introspection' },
      clients: { ...secrets },
    })}\n`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`peer: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
