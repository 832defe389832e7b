/**
 * Seeding for HTTP tests. The device suites seed through the admin GraphQL mutations; the M2M
 * section seeds through the domain services. Additive: each suite keeps its own section.
 */
import type { TestServer } from './server.js';
import type { Client, ClientType, GrantType, Provider, User, UserType } from '../../src/domain/model.js';
import type { DeviceFlowSettingsInput, ProviderInput } from '../../src/domain/providers.js';

let counter = 0;
/** A short unique suffix for names and slugs within one test process. */
export function unique(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid.toString(36)}-${counter.toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
}

// ---- machine-to-machine (client_credentials, federation, introspection) ----
// (Restored from the compiled file after the device suite overwrote this file by mistake.)

export async function seedMachineProvider(test: TestServer, input: ProviderInput = {}): Promise<Provider> {
  const slug = input.slug ?? unique('m2m');
  // ES256 unless asked: an RSA key takes a while to generate on a busy machine.
  return test.server.services.providers.create({ signingAlgorithm: 'ES256', ...input, name: input.name ?? slug, slug });
}

export async function seedMachineClient(
  test: TestServer,
  provider: Pick<Provider, 'id'>,
  options: { clientId?: string; type?: ClientType; grantTypes?: GrantType[]; allowedScopes?: string[] } = {},
): Promise<{ client: Client; clientId: string; clientSecret: string | null }> {
  const { client, clientSecret } = await test.server.services.clients.create({
    providerId: provider.id,
    name: options.clientId ?? 'machine client',
    type: options.type ?? 'CONFIDENTIAL',
    grantTypes: options.grantTypes ?? ['CLIENT_CREDENTIALS'],
    allowedScopes: options.allowedScopes ?? [],
    clientId: options.clientId ?? unique('client'),
  });
  return { client, clientId: client.clientId, clientSecret };
}

/** A user (SERVICE_ACCOUNT by default) with one app password. */
export async function seedUserWithAppPassword(
  test: TestServer,
  options: { username?: string; type?: UserType; email?: string | null; expiresAt?: Date | null } = {},
): Promise<{ user: User; username: string; appPassword: string; appPasswordId: string }> {
  const services = test.server.services;
  const user = await services.users.create({ username: options.username ?? unique('svc'), type: options.type ?? 'SERVICE_ACCOUNT', email: options.email ?? null });
  const { appPassword, secret } = await services.appPasswords.create({ userId: user.id, description: 'test', expiresAt: options.expiresAt ?? null });
  return { user, username: user.username, appPassword: secret, appPasswordId: appPassword.id };
}

// ---- devices (device flow, verification page, refresh tokens, userinfo) ----

export interface SeededProvider {
  id: string;
  slug: string;
  issuer: string;
}

export async function seedProvider(
  test: TestServer,
  input: { slug?: string; name?: string; deviceFlow?: DeviceFlowSettingsInput; accessTokenLifetimeSeconds?: number; refreshTokenLifetimeSeconds?: number } = {},
): Promise<SeededProvider> {
  const slug = input.slug ?? unique('p');
  const data = await test.gql<{ createProvider: SeededProvider }>(
    `mutation($input: CreateProviderInput!) { createProvider(input: $input) { id slug issuer } }`,
    {
      input: {
        name: input.name ?? `Provider ${slug}`,
        slug,
        deviceFlow: input.deviceFlow,
        accessTokenLifetimeSeconds: input.accessTokenLifetimeSeconds,
        refreshTokenLifetimeSeconds: input.refreshTokenLifetimeSeconds,
      },
    },
  );
  return data.createProvider;
}

export interface SeededClient {
  client: Client;
  clientId: string;
  clientSecret: string | null;
}

/** A client made through the createClient mutation (the admin API scripts use). */
export async function seedClient(
  test: TestServer,
  input: { providerId: string; type?: ClientType; grantTypes?: GrantType[]; allowedScopes?: string[]; name?: string; clientId?: string },
): Promise<SeededClient> {
  const data = await test.gql<{ createClient: { client: { clientId: string }; clientSecret: string | null } }>(
    `mutation($input: CreateClientInput!) { createClient(input: $input) { client { clientId } clientSecret } }`,
    {
      input: {
        providerId: input.providerId,
        name: input.name ?? 'Living-room TV',
        type: input.type ?? 'PUBLIC',
        grantTypes: input.grantTypes ?? ['DEVICE_CODE'],
        allowedScopes: input.allowedScopes ?? [],
        clientId: input.clientId,
      },
    },
  );
  const { clientId } = data.createClient.client;
  const client = await test.server.services.clients.getByClientId(clientId);
  if (!client) throw new Error(`createClient answered ${clientId}, which the store does not have`);
  return { client, clientId, clientSecret: data.createClient.clientSecret };
}

export interface SeededUser {
  user: User;
  username: string;
  password: string;
  appPassword: string;
}

/** A person with a login password and one app password, made through the admin mutations. */
export async function seedUser(
  test: TestServer,
  input: { username?: string; name?: string | null; email?: string | null; password?: string; isAdmin?: boolean; attributes?: Record<string, unknown> } = {},
): Promise<SeededUser> {
  const username = input.username ?? unique('user');
  const password = input.password ?? 'correct horse battery staple';
  const created = await test.gql<{ createUser: { id: string } }>(
    `mutation($input: CreateUserInput!) { createUser(input: $input) { id } }`,
    {
      input: {
        username,
        name: input.name === undefined ? 'Ada Lovelace' : input.name,
        email: input.email === undefined ? `${username}@example.com` : input.email,
        password,
        isAdmin: input.isAdmin ?? false,
        attributes: input.attributes,
      },
    },
  );
  const userId = created.createUser.id;
  const app = await test.gql<{ createAppPassword: { secret: string } }>(
    `mutation($input: CreateAppPasswordInput!) { createAppPassword(input: $input) { secret } }`,
    { input: { userId, description: 'tests' } },
  );
  const user = await test.server.services.users.get(userId);
  if (!user) throw new Error(`createUser answered ${userId}, which the store does not have`);
  return { user, username, password, appPassword: app.createAppPassword.secret };
}
