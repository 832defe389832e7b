/**
 * The plan: what applying a document to the server's state would change, object by object, in
 * the order apply writes it. Pure: reads nothing, writes nothing. References by name are checked
 * against what exists after the apply (the document, plus with `prune: false` what the server
 * keeps), and changes that no mutation can make (a client's type or provider, a service account's
 * expiry) are refused with their path.
 */
import { ValidationError } from '../errors.js';
import type { AppPassword, Client, PolicyBinding, PolicyTargetType, Provider, User } from '../model.js';
import { SCALAR_FIELDS, type ConfigDocument, type PolicyDoc, type ProviderDoc, type ClientDoc, type FederatedSourceDoc } from './schema.js';
import { pick, stateToDocument, type ServerState } from './state.js';

export type ConfigChangeAction = 'CREATE' | 'UPDATE' | 'DELETE';
export type ConfigKind =
  | 'provider' | 'client' | 'user' | 'serviceAccount' | 'appPassword' | 'federatedSource' | 'policy' | 'binding' | 'sourcePropertyMapping' | 'scopeMapping';

export interface ConfigChange {
  action: ConfigChangeAction;
  kind: ConfigKind;
  name: string;
  /** CREATE: null; UPDATE: the changed fields as they are; DELETE: the object. */
  before: Record<string, unknown> | null;
  /** CREATE: the object; UPDATE: the changed fields as they will be; DELETE: null. */
  after: Record<string, unknown> | null;
}

/** A change with what apply needs to write it: the server's record (by name) and the names around it. */
export interface Step {
  change: ConfigChange;
  /** The record changed or deleted (its id); absent for CREATE. */
  id?: string;
  /** For nested objects (bindings, mappings, app passwords): the parent's kind and name. */
  parent?: { kind: 'provider' | 'client' | 'user' | 'federatedSource'; name: string };
  /** For bindings: the policy's name. */
  policy?: string;
}

export interface PlanInput {
  desired: ConfigDocument;
  state: ServerState;
  prune: boolean;
  /** Never deleted by prune, nor its app passwords: the admin applying the document. */
  callerId: string | null;
  /** Usernames the document names that belong to generated service accounts. */
  generatedUsernames: ReadonlySet<string>;
}

/** Stable JSON, object keys sorted: equality of document values. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/** Lists whose order means nothing to the server. */
const SET_FIELDS = new Set(['grantTypes', 'allowedScopes', 'allowedAudiences', 'federatedSources', 'federatedProviders']);

function same(key: string, a: unknown, b: unknown): boolean {
  if (SET_FIELDS.has(key) && Array.isArray(a) && Array.isArray(b)) return canonical([...a].sort()) === canonical([...b].sort());
  return canonical(a) === canonical(b);
}

function diff(current: Record<string, unknown>, desired: Record<string, unknown>, keys: readonly string[]): Pick<ConfigChange, 'before' | 'after'> | null {
  const changed = keys.filter((k) => !same(k, current[k], desired[k]));
  if (changed.length === 0) return null;
  return { before: Object.fromEntries(changed.map((k) => [k, current[k]])), after: Object.fromEntries(changed.map((k) => [k, desired[k]])) };
}

function without<T extends object, K extends keyof T>(value: T, keys: readonly K[]): Omit<T, K> {
  const out = { ...value };
  for (const k of keys) delete out[k];
  return out;
}

export function plan(input: PlanInput): Step[] {
  const { desired, state, prune } = input;
  const current = stateToDocument(state);
  checkReferences(input, current);
  const steps: Step[] = [];
  const push = (step: Step) => steps.push(step);
  planSources(desired, current, state, prune, push);
  planNamed(desired.policies, current.policies, 'policy', (p) => p.name, state.policies, prune, push);
  planAccounts(input, current, push);
  planProviders(desired, current, state, prune, push);
  planClients(desired, current, state, prune, push);
  return steps;
}

type Push = (step: Step) => void;

/** Objects named by one key whose fields are all compared (policies, mappings). */
function planNamed<D extends object, R extends { id: string }>(
  desired: readonly D[], current: readonly D[], kind: ConfigKind, key: (d: D) => string, records: readonly R[], prune: boolean, push: Push,
  label: (name: string) => string = (n) => n, parent?: Step['parent'],
): void {
  const byName = new Map(current.map((c, i) => [key(c), { doc: c, id: records[i]!.id }]));
  for (const d of desired) {
    const existing = byName.get(key(d));
    byName.delete(key(d));
    if (!existing) {
      push({ change: { action: 'CREATE', kind, name: label(key(d)), before: null, after: { ...d } as Record<string, unknown> }, parent });
      continue;
    }
    const changed = diff(existing.doc as Record<string, unknown>, d as Record<string, unknown>, Object.keys(d));
    if (changed) push({ change: { action: 'UPDATE', kind, name: label(key(d)), ...changed }, id: existing.id, parent });
  }
  if (!prune) return;
  for (const [name, { doc, id }] of byName) push({ change: { action: 'DELETE', kind, name: label(name), before: { ...doc } as Record<string, unknown>, after: null }, id, parent });
}

function planSources(desired: ConfigDocument, current: ConfigDocument, state: ServerState, prune: boolean, push: Push): void {
  const scalars = (s: FederatedSourceDoc) => without(s, ['propertyMappings']);
  planNamed(desired.federatedSources.map(scalars), current.federatedSources.map(scalars), 'federatedSource', (s) => s.slug, state.federatedSources, prune, push);
  for (const source of desired.federatedSources) {
    const index = current.federatedSources.findIndex((s) => s.slug === source.slug);
    const records = index < 0 ? [] : state.sourceMappings.filter((m) => m.federatedSourceId === state.federatedSources[index]!.id);
    const existing = index < 0 ? [] : current.federatedSources[index]!.propertyMappings;
    planNamed(source.propertyMappings, existing, 'sourcePropertyMapping', (m) => m.name, records, prune, push,
      (n) => `${source.slug}/${n}`, { kind: 'federatedSource', name: source.slug });
  }
}

function planAccounts(input: PlanInput, current: ConfigDocument, push: Push): void {
  const { desired, state, prune } = input;
  const records = new Map(state.users.map((u) => [u.username, u]));
  const named = new Set<string>();
  const lists = [
    { kind: 'user' as const, path: 'users', docs: desired.users, currentDocs: current.users, fields: SCALAR_FIELDS.user as readonly string[] },
    { kind: 'serviceAccount' as const, path: 'serviceAccounts', docs: desired.serviceAccounts, currentDocs: current.serviceAccounts, fields: SCALAR_FIELDS.serviceAccount as readonly string[] },
  ];
  for (const { kind, path, docs, currentDocs, fields } of lists) {
    docs.forEach((doc, i) => {
      named.add(doc.username);
      if (input.generatedUsernames.has(doc.username)) {
        throw new ValidationError(`${path}[${i}].username`, `'${doc.username}' is a generated service account (made by client_credentials), which is not configuration`);
      }
      const record = records.get(doc.username);
      const scalars = pick(doc, fields);
      if (!record) {
        push({ change: { action: 'CREATE', kind, name: doc.username, before: null, after: scalars } });
      } else {
        const isServiceAccount = record.type === 'SERVICE_ACCOUNT';
        if (isServiceAccount !== (kind === 'serviceAccount')) {
          throw new ValidationError(`${path}[${i}].username`, `'${doc.username}' is ${isServiceAccount ? 'a service account: list it under serviceAccounts' : 'a user: list it under users'}`);
        }
        const existing = currentDocs.find((c) => c.username === doc.username)!;
        const changed = diff(pick(existing, fields), scalars, fields);
        for (const fixed of ['type', 'expiresAt']) {
          if (changed?.after && fixed in changed.after) throw new ValidationError(`${path}[${i}].${fixed}`, 'cannot change once the account exists');
        }
        if (changed) push({ change: { action: 'UPDATE', kind, name: doc.username, ...changed }, id: record.id });
      }
      planAppPasswords(input, doc, record ?? null, `${path}[${i}]`, push);
    });
  }
  if (!prune) return;
  for (const user of state.users) {
    if (named.has(user.username) || user.id === input.callerId) continue;
    const kind = user.type === 'SERVICE_ACCOUNT' ? 'serviceAccount' : 'user';
    const doc = [...current.users, ...current.serviceAccounts].find((u) => u.username === user.username)!;
    push({ change: { action: 'DELETE', kind, name: user.username, before: pick(doc, kind === 'user' ? SCALAR_FIELDS.user : SCALAR_FIELDS.serviceAccount), after: null }, id: user.id });
  }
}

function planAppPasswords(input: PlanInput, doc: Pick<ConfigDocument['users'][number], 'username' | 'appPasswords'>, record: User | null, path: string, push: Push): void {
  const existing: AppPassword[] = record ? input.state.appPasswords.filter((a) => a.userId === record.id) : [];
  const parent = { kind: 'user' as const, name: doc.username };
  const label = (description: string | null) => `${doc.username}/${description ?? ''}`;
  doc.appPasswords.forEach((a, j) => {
    const index = existing.findIndex((e) => (e.description ?? '') === (a.description ?? ''));
    const match = index < 0 ? null : existing.splice(index, 1)[0]!;
    const expiresAt = a.expiresAt === null ? null : new Date(a.expiresAt).getTime();
    if (match) {
      if ((match.expiresAt?.getTime() ?? null) !== expiresAt) {
        throw new ValidationError(`${path}.appPasswords[${j}].expiresAt`, 'cannot change once the app password exists; give a new description to make a new one');
      }
      return;
    }
    if (expiresAt !== null && expiresAt <= Date.now()) throw new ValidationError(`${path}.appPasswords[${j}].expiresAt`, 'must be in the future');
    push({ change: { action: 'CREATE', kind: 'appPassword', name: label(a.description), before: null, after: { ...a } }, parent });
  });
  if (!input.prune || record?.id === input.callerId) return;
  for (const e of existing) {
    push({ change: { action: 'DELETE', kind: 'appPassword', name: label(e.description), before: { description: e.description, expiresAt: e.expiresAt?.toISOString() ?? null }, after: null }, id: e.id, parent });
  }
}

const PROVIDER_NESTED = ['policies', 'scopeMappings'] as const;
const CLIENT_NESTED = ['policies'] as const;

function planProviders(desired: ConfigDocument, current: ConfigDocument, state: ServerState, prune: boolean, push: Push): void {
  const scalars = (p: ProviderDoc) => without(p, PROVIDER_NESTED);
  planNamed(desired.providers.map(scalars), current.providers.map(scalars), 'provider', (p) => p.slug, state.providers, prune, push);
  for (const provider of desired.providers) {
    const record = state.providers.find((p) => p.slug === provider.slug);
    const parent = { kind: 'provider' as const, name: provider.slug };
    const mappings = record ? state.scopeMappings.filter((m) => m.providerId === record.id) : [];
    const existing = mappings.map((m) => ({ scope: m.scope, name: m.name, expression: m.expression }));
    planNamed(provider.scopeMappings, existing, 'scopeMapping', (m) => m.name, mappings, prune, push, (n) => `${provider.slug}/${n}`, parent);
    planBindings(state, 'PROVIDER', record ?? null, provider.policies, prune, parent, push);
  }
}

function planClients(desired: ConfigDocument, current: ConfigDocument, state: ServerState, prune: boolean, push: Push): void {
  desired.clients.forEach((client, i) => {
    const existing = current.clients.find((c) => c.clientId === client.clientId);
    if (existing && existing.provider !== client.provider) {
      throw new ValidationError(`clients[${i}].provider`, `client '${client.clientId}' belongs to provider '${existing.provider}'; a client cannot move (give a new clientId)`);
    }
    if (existing && existing.type !== client.type) throw new ValidationError(`clients[${i}].type`, 'cannot change once the client exists (give a new clientId)');
  });
  const scalars = (c: ClientDoc) => without(c, CLIENT_NESTED);
  planNamed(desired.clients.map(scalars), current.clients.map(scalars), 'client', (c) => c.clientId, state.clients, prune, push);
  for (const client of desired.clients) {
    const record = state.clients.find((c) => c.clientId === client.clientId);
    planBindings(state, 'CLIENT', record ?? null, client.policies, prune, { kind: 'client', name: client.clientId }, push);
  }
}

/**
 * A target's bound policies are its document list, in that order: when the order of the named
 * ones is already that (whatever the order numbers), nothing changes; otherwise each gets its
 * index as order. With prune, bindings the list does not name go.
 */
function planBindings(
  state: ServerState, targetType: PolicyTargetType, target: Provider | Client | null, names: readonly string[], prune: boolean,
  parent: NonNullable<Step['parent']>, push: Push,
): void {
  const policyName = new Map(state.policies.map((p) => [p.id, p.name]));
  const bindings: PolicyBinding[] = target
    ? state.bindings.filter((b) => b.targetType === targetType && b.targetId === target.id)
      .sort((a, b) => a.order - b.order || a.createdAt.getTime() - b.createdAt.getTime())
    : [];
  const byPolicy = new Map(bindings.map((b) => [policyName.get(b.policyId) ?? '', b]));
  const label = (policy: string) => `${parent.kind} ${parent.name} → ${policy}`;
  const inOrder = bindings.map((b) => policyName.get(b.policyId)).filter((n) => n !== undefined && names.includes(n));
  const unchanged = inOrder.length === names.length && inOrder.every((n, i) => n === names[i]);
  names.forEach((policy, order) => {
    const existing = byPolicy.get(policy);
    if (!existing) push({ change: { action: 'CREATE', kind: 'binding', name: label(policy), before: null, after: { policy, order } }, parent, policy });
    else if (!unchanged && existing.order !== order) {
      push({ change: { action: 'UPDATE', kind: 'binding', name: label(policy), before: { order: existing.order }, after: { order } }, id: existing.id, parent, policy });
    }
  });
  if (!prune) return;
  for (const [policy, binding] of byPolicy) {
    if (!names.includes(policy)) push({ change: { action: 'DELETE', kind: 'binding', name: label(policy), before: { policy, order: binding.order }, after: null }, id: binding.id, parent, policy });
  }
}

/** Every name the document uses must name something that exists after the apply. */
function checkReferences(input: PlanInput, current: ConfigDocument): void {
  const { desired, prune } = input;
  const names = <T>(doc: readonly T[], server: readonly T[], key: (t: T) => string) => new Set([...doc.map(key), ...(prune ? [] : server.map(key))]);
  const sources = names(desired.federatedSources, current.federatedSources, (s) => s.slug);
  const providers = names(desired.providers, current.providers, (p) => p.slug);
  const policies = names<PolicyDoc>(desired.policies, current.policies, (p) => p.name);
  const missing = (set: Set<string>, list: readonly string[]) => list.findIndex((n) => !set.has(n));
  const refuse = (path: string, what: string, name: string) => {
    throw new ValidationError(path, `names ${what} '${name}', which ${prune ? 'the document does not define (prune would delete it)' : 'neither the document nor the server has'}`);
  };
  desired.providers.forEach((p, i) => {
    let j = missing(sources, p.federatedSources);
    if (j >= 0) refuse(`providers[${i}].federatedSources[${j}]`, 'the federated source', p.federatedSources[j]!);
    j = missing(providers, p.federatedProviders);
    if (j >= 0) refuse(`providers[${i}].federatedProviders[${j}]`, 'the provider', p.federatedProviders[j]!);
    j = p.federatedProviders.indexOf(p.slug);
    if (j >= 0) throw new ValidationError(`providers[${i}].federatedProviders[${j}]`, 'a provider cannot federate with itself');
    j = missing(policies, p.policies);
    if (j >= 0) refuse(`providers[${i}].policies[${j}]`, 'the policy', p.policies[j]!);
  });
  desired.clients.forEach((c, i) => {
    if (!providers.has(c.provider)) refuse(`clients[${i}].provider`, 'the provider', c.provider);
    const j = missing(policies, c.policies);
    if (j >= 0) refuse(`clients[${i}].policies[${j}]`, 'the policy', c.policies[j]!);
  });
}
