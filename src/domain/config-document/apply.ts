/**
 * Applying a plan through the domain services (the same writes the mutations make), in an order
 * that never lets a token request see an object half-configured:
 *   sources, mappings, policies, accounts and app passwords first (nothing uses them yet);
 *   then new providers without the sources and providers they trust, and new clients holding only
 *   REFRESH_TOKEN (inert: a client that never issued a token has no refresh token to present);
 *   then bindings and scope mappings; then the switch: clients get their grants, providers their
 *   trust; deletions last, clients and providers before what they used.
 * Every write pushes its compensation; when one fails, the compensations run newest first, so the
 * server returns to where it was (a deletion cannot be undone, which is why deletions come last).
 */
import type { GrantType, PolicyTargetType } from '../model.js';
import type { Services } from '../services.js';
import { ValidationError } from '../errors.js';
import { prefixed } from './validate.js';
import type { ConfigDocument } from './schema.js';
import type { ServerState } from './state.js';
import type { ConfigKind, Step } from './plan.js';

export interface ConfigSecret {
  kind: ConfigKind;
  name: string;
  secret: string;
}

export interface Actor {
  requestId: string | null;
  username: string | null;
}

type Fields = Record<string, unknown>;
type Undo = () => Promise<unknown>;
interface Write { phase: number; step: Step; run: () => Promise<Undo | null> }

/** Ids by name, filled in as objects are created. */
class Names {
  readonly maps: Record<'provider' | 'client' | 'user' | 'federatedSource' | 'policy', Map<string, string>>;
  constructor(state: ServerState) {
    this.maps = {
      provider: new Map(state.providers.map((p) => [p.slug, p.id])),
      client: new Map(state.clients.map((c) => [c.clientId, c.id])),
      user: new Map(state.users.map((u) => [u.username, u.id])),
      federatedSource: new Map(state.federatedSources.map((s) => [s.slug, s.id])),
      policy: new Map(state.policies.map((p) => [p.name, p.id])),
    };
  }
  id(kind: keyof Names['maps'], name: string): string {
    const id = this.maps[kind].get(name);
    if (!id) throw new Error(`config apply: no ${kind} '${name}' (the plan should have refused this)`);
    return id;
  }
}

const PHASE = {
  CREATE: { federatedSource: 10, sourcePropertyMapping: 11, policy: 20, user: 30, serviceAccount: 30, appPassword: 31, provider: 40, client: 50, binding: 60, scopeMapping: 61 },
  DELETE: { client: 80, provider: 81, binding: 82, scopeMapping: 83, sourcePropertyMapping: 84, appPassword: 85, user: 86, serviceAccount: 86, policy: 87, federatedSource: 88 },
} as const;
/** Client updates and new clients' grants; providers' trust: after everything they rely on. */
const SWITCH_CLIENTS = 70;
const SWITCH_PROVIDERS = 71;
/** What a new client holds until its bindings are in place. */
const INERT_GRANTS: GrantType[] = ['REFRESH_TOKEN'];
const REFERENCE_FIELDS = ['federatedSources', 'federatedProviders'];

function split(fields: Fields | null, keys: readonly string[]): [Fields, Fields] {
  const inside: Fields = {};
  const outside: Fields = {};
  for (const [k, v] of Object.entries(fields ?? {})) (keys.includes(k) ? inside : outside)[k] = v;
  return [inside, outside];
}

export async function applySteps(
  services: Services, state: ServerState, desired: ConfigDocument, steps: readonly Step[], actor: Actor,
): Promise<ConfigSecret[]> {
  const names = new Names(state);
  const secrets: ConfigSecret[] = [];
  const writes = steps.flatMap((step) => writesFor(services, names, step, secrets));
  writes.sort((a, b) => a.phase - b.phase);
  const undo: { step: Step; run: Undo }[] = [];
  const recorded = new Set<Step>();
  for (const write of writes) {
    try {
      const compensation = await write.run();
      if (compensation) undo.push({ step: write.step, run: compensation });
    } catch (error) {
      await rollBack(services, undo, actor);
      throw error instanceof ValidationError ? prefixed(pathOf(desired, write.step), error) : error;
    }
    if (!recorded.has(write.step)) {
      recorded.add(write.step);
      record(services, actor, 'applyConfig', write.step);
    }
  }
  return secrets;
}

function record(services: Services, actor: Actor, operation: string, step: Step): void {
  const { action, kind, name, after, before } = step.change;
  services.events.record({
    action: 'CONFIG_CHANGED', requestId: actor.requestId, username: actor.username,
    // Field names only, never values: the audit log holds no configuration values.
    context: { operation, action, kind, name, fields: Object.keys(after ?? before ?? {}) },
  });
}

async function rollBack(services: Services, undo: { step: Step; run: Undo }[], actor: Actor): Promise<void> {
  for (const { step, run } of undo.reverse()) {
    try {
      await run();
      record(services, actor, 'applyConfig:rollback', step);
    } catch (error) {
      services.logger.error({ err: error, kind: step.change.kind, name: step.change.name, requestId: actor.requestId }, 'config apply: a compensating write failed');
    }
  }
}

/** Where in the document a step's object is, for errors found only when writing (a JWKS URL that does not answer). */
function pathOf(desired: ConfigDocument, step: Step): string {
  const { kind, name } = step.change;
  const find = (list: readonly { [k: string]: unknown }[], key: string, value: string, path: string) => {
    const i = list.findIndex((o) => o[key] === value);
    return i < 0 ? kind : `${path}[${i}]`;
  };
  if (kind === 'provider') return find(desired.providers, 'slug', name, 'providers');
  if (kind === 'client') return find(desired.clients, 'clientId', name, 'clients');
  if (kind === 'federatedSource') return find(desired.federatedSources, 'slug', name, 'federatedSources');
  if (kind === 'policy') return find(desired.policies, 'name', name, 'policies');
  if (kind === 'user') return find(desired.users, 'username', name, 'users');
  if (kind === 'serviceAccount') return find(desired.serviceAccounts, 'username', name, 'serviceAccounts');
  return kind;
}

function writesFor(services: Services, names: Names, step: Step, secrets: ConfigSecret[]): Write[] {
  const { action, kind } = step.change;
  const after = (step.change.after ?? {}) as Fields;
  const before = (step.change.before ?? {}) as Fields;
  const w = (phase: number, run: Write['run']): Write => ({ phase, step, run });
  if (action === 'DELETE') return [w(PHASE.DELETE[kind], async () => { await deleteOne(services, names, step); return null; })];
  switch (kind) {
    case 'federatedSource': {
      const s = services.federatedSources;
      if (action === 'UPDATE') return [w(10, async () => { await s.update(step.id!, after); return () => s.update(step.id!, before); })];
      return [w(10, async () => {
        const created = await s.create(after as unknown as Parameters<typeof s.create>[0]);
        names.maps.federatedSource.set(created.slug, created.id);
        return () => s.delete(created.id);
      })];
    }
    case 'sourcePropertyMapping': {
      const p = services.policies;
      if (action === 'UPDATE') return [w(11, async () => { await p.updateSourcePropertyMapping(step.id!, after); return () => p.updateSourcePropertyMapping(step.id!, before); })];
      return [w(11, async () => {
        const created = await p.createSourcePropertyMapping({ ...after, federatedSourceId: names.id('federatedSource', step.parent!.name) });
        return () => p.deleteSourcePropertyMapping(created.id);
      })];
    }
    case 'policy': {
      const p = services.policies;
      if (action === 'UPDATE') return [w(20, async () => { await p.updatePolicy(step.id!, after); return () => p.updatePolicy(step.id!, before); })];
      return [w(20, async () => {
        const created = await p.createPolicy(after);
        names.maps.policy.set(created.name, created.id);
        return () => p.deletePolicy(created.id);
      })];
    }
    case 'user':
    case 'serviceAccount':
      return [w(30, () => writeAccount(services, names, step))];
    case 'appPassword':
      return [w(31, async () => {
        const { appPassword, secret } = await services.appPasswords.create({
          userId: names.id('user', step.parent!.name),
          description: after.description as string | null,
          expiresAt: after.expiresAt ? new Date(after.expiresAt as string) : null,
        });
        secrets.push({ kind: 'appPassword', name: step.change.name, secret });
        return () => services.appPasswords.revoke(appPassword.id);
      })];
    case 'provider':
      return providerWrites(services, names, step, w);
    case 'client':
      return clientWrites(services, names, step, secrets, w);
    case 'binding':
      return [w(60, () => writeBinding(services, names, step))];
    case 'scopeMapping': {
      const p = services.policies;
      if (action === 'UPDATE') return [w(61, async () => { await p.updateScopeMapping(step.id!, after); return () => p.updateScopeMapping(step.id!, before); })];
      return [w(61, async () => {
        const created = await p.createScopeMapping({ ...after, providerId: names.id('provider', step.parent!.name) });
        return () => p.deleteScopeMapping(created.id);
      })];
    }
  }
}

async function writeAccount(services: Services, names: Names, step: Step): Promise<Undo> {
  const u = services.users;
  const after = step.change.after as Fields;
  if (step.change.action === 'UPDATE') {
    await u.update(step.id!, after);
    return () => u.update(step.id!, step.change.before as Fields);
  }
  const base = { username: step.change.name, name: after.name as string | null, attributes: after.attributes as Record<string, unknown> };
  const created = step.change.kind === 'serviceAccount'
    ? await u.createServiceAccount({ ...base, expiresAt: after.expiresAt ? new Date(after.expiresAt as string) : null })
    : await u.create({ ...base, email: after.email as string | null, type: after.type as 'INTERNAL' | 'EXTERNAL', isAdmin: after.isAdmin as boolean });
  names.maps.user.set(created.username, created.id);
  const rest: Fields = {};
  if (after.isActive === false) rest.isActive = false;
  if (after.isAdmin === true && !created.isAdmin) rest.isAdmin = true;
  if (Object.keys(rest).length > 0) {
    try {
      await u.update(created.id, rest);
    } catch (error) {
      await u.delete(created.id);
      throw error;
    }
  }
  return () => u.delete(created.id);
}

function refs(names: Names, fields: Fields): { federatedSourceIds?: string[]; federatedProviderIds?: string[] } {
  const out: { federatedSourceIds?: string[]; federatedProviderIds?: string[] } = {};
  if (fields.federatedSources) out.federatedSourceIds = (fields.federatedSources as string[]).map((s) => names.id('federatedSource', s));
  if (fields.federatedProviders) out.federatedProviderIds = (fields.federatedProviders as string[]).map((s) => names.id('provider', s));
  return out;
}

/** A provider update clears its optional texts with '' (null leaves them as they are). */
function clearable(fields: Fields): Fields {
  const out = { ...fields };
  for (const key of ['displayName', 'logoUrl']) if (key in out && out[key] === null) out[key] = '';
  return out;
}

function providerWrites(services: Services, names: Names, step: Step, w: (phase: number, run: Write['run']) => Write): Write[] {
  const p = services.providers;
  const [afterRefs, afterScalars] = split(step.change.after, REFERENCE_FIELDS);
  const [beforeRefs, beforeScalars] = split(step.change.before, REFERENCE_FIELDS);
  const updated = async (id: string) => services.tokens.invalidateProviderKeys(id);
  let id = step.id;
  const writes: Write[] = [];
  if (step.change.action === 'CREATE') {
    const { slug, ...scalars } = afterScalars;
    writes.push(w(40, async () => {
      const created = await p.create({ ...scalars, slug, name: scalars.name, federatedSourceIds: [], federatedProviderIds: [] } as Parameters<typeof p.create>[0]);
      id = created.id;
      names.maps.provider.set(created.slug, created.id);
      return async () => { await p.delete(created.id); await updated(created.id); };
    }));
  } else if (Object.keys(afterScalars).length > 0) {
    writes.push(w(40, async () => {
      await p.update(id!, clearable(afterScalars));
      await updated(id!);
      return async () => { await p.update(id!, clearable(beforeScalars)); await updated(id!); };
    }));
  }
  const hasRefs = Object.values(afterRefs).some((v) => Array.isArray(v) && v.length > 0) || step.change.action === 'UPDATE';
  if (Object.keys(afterRefs).length > 0 && hasRefs) {
    writes.push(w(SWITCH_PROVIDERS, async () => {
      await p.update(id!, refs(names, afterRefs));
      const previous = step.change.action === 'CREATE' ? { federatedSourceIds: [], federatedProviderIds: [] } : refs(names, beforeRefs);
      return () => p.update(id!, previous);
    }));
  }
  return writes;
}

function clientWrites(
  services: Services, names: Names, step: Step, secrets: ConfigSecret[], w: (phase: number, run: Write['run']) => Write,
): Write[] {
  const c = services.clients;
  const after = (step.change.after ?? {}) as Fields;
  if (step.change.action === 'UPDATE') {
    return [w(SWITCH_CLIENTS, async () => { await c.update(step.id!, after); return () => c.update(step.id!, step.change.before as Fields); })];
  }
  let id = '';
  const { provider, grantTypes, ...rest } = after;
  return [
    w(PHASE.CREATE.client, async () => {
      const created = await c.create({ ...(rest as object), providerId: names.id('provider', provider as string), grantTypes: INERT_GRANTS } as Parameters<typeof c.create>[0]);
      id = created.client.id;
      names.maps.client.set(created.client.clientId, id);
      if (created.clientSecret) secrets.push({ kind: 'client', name: created.client.clientId, secret: created.clientSecret });
      return () => c.delete(id);
    }),
    w(SWITCH_CLIENTS, async () => { await c.update(id, { grantTypes: grantTypes as GrantType[] }); return null; }),
  ];
}

async function writeBinding(services: Services, names: Names, step: Step): Promise<Undo> {
  const p = services.policies;
  const order = (step.change.after as Fields).order as number;
  if (step.change.action === 'UPDATE') {
    await p.setBindingOrder(step.id!, order);
    return () => p.setBindingOrder(step.id!, (step.change.before as Fields).order as number);
  }
  const parent = step.parent!;
  const targetType: PolicyTargetType = parent.kind === 'provider' ? 'PROVIDER' : 'CLIENT';
  const binding = await p.bind({ policyId: names.id('policy', step.policy!), targetType, targetId: names.id(parent.kind as 'provider' | 'client', parent.name), order });
  return () => p.unbind(binding.id);
}

async function deleteOne(services: Services, names: Names, step: Step): Promise<void> {
  const id = step.id!;
  switch (step.change.kind) {
    case 'client': await services.clients.delete(id); break;
    case 'provider': await services.providers.delete(id); services.tokens.invalidateProviderKeys(id); break;
    case 'binding': await services.policies.unbind(id); break;
    case 'scopeMapping': await services.policies.deleteScopeMapping(id); break;
    case 'sourcePropertyMapping': await services.policies.deleteSourcePropertyMapping(id); break;
    case 'appPassword': await services.appPasswords.revoke(id); break;
    case 'user': case 'serviceAccount': await services.users.delete(id); break;
    case 'policy': await services.policies.deletePolicy(id); break;
    case 'federatedSource': await services.federatedSources.delete(id); break;
  }
  void names;
}
