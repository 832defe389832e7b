/**
 * The storage port's contract, run against every adapter (test/store/embedded.test.ts,
 * test/store/mongodb.test.ts). `open` is called once per run; every test starts from empty
 * collections, so tests do not see each other's records. Test names state the rule they check.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type {
  AppPassword, AuditEvent, Client, DeviceAuthorization, Provider, RefreshToken, RevokedToken, User,
} from '../../src/domain/model.js';
import { ConflictError, type Store } from '../../src/store/index.js';
import type { Filter, Operators } from '../../src/store/ports.js';
import { COLLECTION_NAMES, COLLECTION_SPECS } from '../../src/store/specs.js';
import { DpopVerifier } from '../../src/domain/dpop.js';
import { makeProof, proofKey } from '../helpers/dpop.js';
import { SigningKeyService } from '../../src/domain/keys.js';
import { KeyRotationScheduler } from '../../src/domain/key-rotation.js';

export type OpenStore = () => Promise<{ store: Store; cleanup: () => Promise<void> }>;

const HOUR = 3_600_000;
const short = (): string => randomUUID().slice(0, 8);

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

export function makeProvider(overrides: Partial<Provider> = {}): Provider {
  const now = new Date();
  return {
    id: randomUUID(),
    name: 'Acme',
    slug: `acme-${short()}`,
    accessTokenLifetimeSeconds: 3600,
    refreshTokenLifetimeSeconds: 86_400,
    signingAlgorithm: 'ES256',
    deviceFlow: {
      userCodeCharset: 'BASE20', userCodeAlphabet: null, userCodeLength: 8, codeLifetimeSeconds: 600,
      pollIntervalSeconds: 5, verificationUri: null, requirePkce: false,
    },
    federatedSourceIds: [],
    federatedProviderIds: [],
    createdAt: now,
    updatedAt: now,
    ...overrides,
  };
}

export function makeClient(overrides: Partial<Client> = {}): Client {
  const now = new Date();
  return {
    id: randomUUID(),
    providerId: randomUUID(),
    name: 'CLI',
    clientId: `cli-${short()}`,
    type: 'PUBLIC',
    grantTypes: ['DEVICE_CODE', 'REFRESH_TOKEN'],
    allowedScopes: ['openid', 'profile'],
    secretHash: null,
    createdAt: now,
    updatedAt: now,
    ...overrides,
  };
}

export function makeUser(overrides: Partial<User> = {}): User {
  const now = new Date();
  return {
    id: randomUUID(),
    username: `user-${short()}`,
    name: null,
    email: null,
    type: 'INTERNAL',
    isActive: true,
    isAdmin: false,
    attributes: {},
    passwordHash: null,
    expiresAt: null,
    createdAt: now,
    updatedAt: now,
    ...overrides,
  };
}

export function makeAppPassword(overrides: Partial<AppPassword> = {}): AppPassword {
  return {
    id: randomUUID(), userId: randomUUID(), description: null, secretHash: randomUUID(), expiresAt: null, lastUsedAt: null,
    createdAt: new Date(), ...overrides,
  };
}

export function makeDeviceAuthorization(overrides: Partial<DeviceAuthorization> = {}): DeviceAuthorization {
  const now = Date.now();
  return {
    id: randomUUID(),
    deviceCodeHash: randomUUID(),
    userCode: short().toUpperCase(),
    clientId: 'cli',
    providerId: randomUUID(),
    scopes: ['openid'],
    codeChallenge: null,
    codeChallengeMethod: null,
    status: 'pending',
    intervalSeconds: 5,
    nextPollAt: null,
    userId: null,
    decidedAt: null,
    expiresAt: new Date(now + 10 * 60_000),
    createdAt: new Date(now),
    ...overrides,
  };
}

export function makeRefreshToken(overrides: Partial<RefreshToken> = {}): RefreshToken {
  const now = Date.now();
  return {
    id: randomUUID(),
    tokenHash: randomUUID(),
    familyId: randomUUID(),
    clientId: 'cli',
    providerId: randomUUID(),
    userId: randomUUID(),
    scopes: ['openid'],
    usedAt: null,
    revokedAt: null,
    expiresAt: new Date(now + HOUR),
    createdAt: new Date(now),
    ...overrides,
  };
}

export function makeRevokedToken(overrides: Partial<RevokedToken> = {}): RevokedToken {
  return { id: randomUUID(), expiresAt: new Date(Date.now() + HOUR), createdAt: new Date(), ...overrides };
}

export function makeEvent(overrides: Partial<AuditEvent> = {}): AuditEvent {
  return {
    id: randomUUID(), action: 'test', requestId: null, clientId: null, username: null, context: {}, createdAt: new Date(),
    ...overrides,
  };
}

async function rejectsWithConflict(promise: Promise<unknown>, collection: string, field: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ConflictError, `expected a ConflictError, got ${String(error)}`);
    assert.equal(error.collection, collection);
    assert.equal(error.field, field);
    assert.match(error.message, new RegExp(field));
    return true;
  });
}

const ids = (records: { id: string }[]): string[] => records.map((r) => r.id);
const sortedIds = (records: { id: string }[]): string[] => ids(records).sort();

// ---------------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------------

export function runStoreContract(name: string, open: OpenStore): void {
  describe(`store contract: ${name}`, () => {
    // One store for the suite (opening one builds its indexes, or connects), emptied before each
    // test, so that every test starts from empty collections.
    let opened: Awaited<ReturnType<OpenStore>> | undefined;
    before(async () => {
      opened = await open();
    });
    after(async () => {
      await opened?.cleanup();
    });
    const test = (title: string, fn: (store: Store, t: TestContext) => Promise<void>): void => {
      it(title, { timeout: 15_000 }, async (t) => {
        assert.ok(opened, 'the store opened');
        for (const collection of COLLECTION_NAMES) await opened.store[collection].deleteMany({});
        await fn(opened.store, t);
      });
    };

    describe('basics', () => {
      test('ping resolves on an open store', async (store) => {
        await store.ping();
      });

      test('insert returns the record, and findOne by id gives back an equal record', async (store) => {
        const user = makeUser({ name: 'Ada', email: 'ada@example.org' });
        const inserted = await store.users.insert(user);
        assert.deepEqual(inserted, user);
        const found = await store.users.findOne({ id: user.id });
        assert.deepEqual(found, user);
      });

      test('records come back with `id` and never with `_id` or `__v`', async (store) => {
        const provider = makeProvider();
        const inserted = await store.providers.insert(provider);
        const found = await store.providers.findOne({ slug: provider.slug });
        const [listed] = await store.providers.find({});
        const updated = await store.providers.updateOne({ id: provider.id }, { $set: { name: 'Renamed' } });
        for (const record of [inserted, found, listed, updated]) {
          assert.ok(record);
          assert.equal(record.id, provider.id);
          assert.ok(!('_id' in record), 'no _id');
          assert.ok(!('__v' in record), 'no __v');
        }
      });

      test('findOne returns null when nothing matches', async (store) => {
        assert.equal(await store.users.findOne({ id: randomUUID() }), null);
        assert.equal(await store.users.findOne({ username: 'nobody' }), null);
      });

      test('an id filter accepts operators ($in, $ne) like any field', async (store) => {
        const [a, b, c] = [makeEvent(), makeEvent(), makeEvent()];
        for (const e of [a, b, c]) await store.events.insert(e);
        assert.deepEqual(sortedIds(await store.events.find({ id: { $in: [a.id, c.id] } })), [a.id, c.id].sort());
        assert.deepEqual(sortedIds(await store.events.find({ id: { $ne: b.id } })), [a.id, c.id].sort());
      });

      test('Dates round-trip as Date, on insert and on update', async (store) => {
        const createdAt = new Date('2024-02-29T12:34:56.789Z');
        const token = makeRefreshToken({ createdAt, expiresAt: new Date(Date.now() + HOUR) });
        await store.refreshTokens.insert(token);
        const found = await store.refreshTokens.findOne({ id: token.id });
        assert.ok(found);
        assert.ok(found.createdAt instanceof Date, 'createdAt is a Date');
        assert.equal(found.createdAt.getTime(), createdAt.getTime());
        assert.ok(found.expiresAt instanceof Date);
        const usedAt = new Date('2025-01-01T00:00:00.001Z');
        const updated = await store.refreshTokens.updateOne({ id: token.id }, { $set: { usedAt } });
        assert.ok(updated?.usedAt instanceof Date);
        assert.equal(updated.usedAt.getTime(), usedAt.getTime());
        const [listed] = await store.refreshTokens.find({ id: token.id });
        assert.ok(listed?.usedAt instanceof Date);
        assert.equal(listed.usedAt.getTime(), usedAt.getTime());
      });

      test('nested plain objects and arrays round-trip unchanged', async (store) => {
        const provider = makeProvider({ federatedSourceIds: ['a', 'b'], federatedProviderIds: [] });
        await store.providers.insert(provider);
        assert.deepEqual(await store.providers.findOne({ id: provider.id }), provider);
      });
    });

    describe('find: sort, limit, skip', () => {
      async function seed(store: Store): Promise<AuditEvent[]> {
        const base = Date.parse('2025-01-01T00:00:00Z');
        const events = [3, 1, 4, 0, 2].map((n) => makeEvent({ action: `a${n}`, createdAt: new Date(base + n * 1000) }));
        for (const e of events) await store.events.insert(e);
        return events;
      }

      test('find sorts ascending and descending', async (store) => {
        await seed(store);
        const asc = await store.events.find({}, { sort: { createdAt: 1 } });
        assert.deepEqual(asc.map((e) => e.action), ['a0', 'a1', 'a2', 'a3', 'a4']);
        const desc = await store.events.find({}, { sort: { createdAt: -1 } });
        assert.deepEqual(desc.map((e) => e.action), ['a4', 'a3', 'a2', 'a1', 'a0']);
      });

      test('find applies skip before limit, after sorting', async (store) => {
        await seed(store);
        const page = await store.events.find({}, { sort: { createdAt: 1 }, skip: 1, limit: 2 });
        assert.deepEqual(page.map((e) => e.action), ['a1', 'a2']);
        const last = await store.events.find({}, { sort: { createdAt: 1 }, skip: 4, limit: 10 });
        assert.deepEqual(last.map((e) => e.action), ['a4']);
        assert.deepEqual(await store.events.find({}, { skip: 5 }), []);
        assert.equal((await store.events.find({}, { limit: 3 })).length, 3);
        assert.equal((await store.events.find({}, { limit: 0 })).length, 5, 'a limit of 0 is no limit, as in MongoDB');
      });

      test('find sorts by id through the `id` name', async (store) => {
        const events = ['c', 'a', 'b'].map((p) => makeEvent({ id: `${p}-${short()}` }));
        for (const e of events) await store.events.insert(e);
        const asc = await store.events.find({}, { sort: { id: 1 } });
        assert.deepEqual(ids(asc), ids(events).sort());
        const desc = await store.events.find({}, { sort: { id: -1 } });
        assert.deepEqual(ids(desc), ids(events).sort().reverse());
      });

      test('find sorts on a second key when the first ties', async (store) => {
        const at = new Date('2025-01-01T00:00:00Z');
        const events = ['b', 'c', 'a'].map((action) => makeEvent({ action, createdAt: at }));
        for (const e of events) await store.events.insert(e);
        const sorted = await store.events.find({}, { sort: { createdAt: -1, action: 1 } });
        assert.deepEqual(sorted.map((e) => e.action), ['a', 'b', 'c']);
      });
    });

    describe('filters', () => {
      async function seed(store: Store): Promise<Client[]> {
        const clients = [
          makeClient({ name: 'c0', clientId: 'c0', type: 'PUBLIC', allowedScopes: ['openid'], createdAt: new Date(1000) }),
          makeClient({ name: 'c1', clientId: 'c1', type: 'CONFIDENTIAL', secretHash: 'h1', allowedScopes: ['openid', 'admin'], createdAt: new Date(2000) }),
          makeClient({ name: 'c2', clientId: 'c2', type: 'CONFIDENTIAL', secretHash: 'h2', allowedScopes: ['admin'], createdAt: new Date(3000) }),
          makeClient({ name: 'c3', clientId: 'c3', type: 'PUBLIC', allowedScopes: [], createdAt: new Date(4000) }),
        ];
        for (const c of clients) await store.clients.insert(c);
        return clients;
      }
      const names = (clients: Client[]): string[] => clients.map((c) => c.name).sort();

      test('$gt, $gte, $lt and $lte compare Dates', async (store) => {
        await seed(store);
        assert.deepEqual(names(await store.clients.find({ createdAt: { $gt: new Date(2000) } })), ['c2', 'c3']);
        assert.deepEqual(names(await store.clients.find({ createdAt: { $gte: new Date(2000) } })), ['c1', 'c2', 'c3']);
        assert.deepEqual(names(await store.clients.find({ createdAt: { $lt: new Date(2000) } })), ['c0']);
        assert.deepEqual(names(await store.clients.find({ createdAt: { $lte: new Date(2000) } })), ['c0', 'c1']);
        assert.deepEqual(
          names(await store.clients.find({ createdAt: { $gt: new Date(1000), $lt: new Date(4000) } })), ['c1', 'c2'],
        );
      });

      test('$gt and $lt compare numbers', async (store) => {
        for (const n of [1, 5, 10]) await store.deviceAuthorizations.insert(makeDeviceAuthorization({ intervalSeconds: n }));
        const found = await store.deviceAuthorizations.find({ intervalSeconds: { $gt: 1, $lt: 10 } });
        assert.deepEqual(found.map((d) => d.intervalSeconds), [5]);
      });

      test('$in matches any listed value; $nin none of them', async (store) => {
        await seed(store);
        assert.deepEqual(names(await store.clients.find({ clientId: { $in: ['c0', 'c3', 'nope'] } })), ['c0', 'c3']);
        assert.deepEqual(names(await store.clients.find({ clientId: { $nin: ['c0', 'c3'] } })), ['c1', 'c2']);
        assert.deepEqual(await store.clients.find({ clientId: { $in: [] } }), []);
      });

      test('$ne on a scalar field excludes that value', async (store) => {
        await seed(store);
        assert.deepEqual(names(await store.clients.find({ type: { $ne: 'PUBLIC' } })), ['c1', 'c2']);
      });

      test('$ne: null matches records whose field is set', async (store) => {
        await seed(store);
        assert.deepEqual(names(await store.clients.find({ secretHash: { $ne: null } })), ['c1', 'c2']);
      });

      test('equality with null matches records whose field is null', async (store) => {
        await seed(store);
        assert.deepEqual(names(await store.clients.find({ secretHash: null })), ['c0', 'c3']);
      });

      test('equality on an array field matches any element', async (store) => {
        await seed(store);
        assert.deepEqual(names(await store.clients.find({ allowedScopes: 'admin' })), ['c1', 'c2']);
        assert.deepEqual(names(await store.clients.find({ allowedScopes: 'openid' })), ['c0', 'c1']);
        assert.deepEqual(await store.clients.find({ allowedScopes: 'nope' }), []);
      });

      test('$in on an array field matches when any element is listed', async (store) => {
        await seed(store);
        assert.deepEqual(names(await store.clients.find({ allowedScopes: { $in: ['admin', 'x'] } })), ['c1', 'c2']);
      });

      test('$ne on an array field excludes records with any element equal to the value', async (store) => {
        await seed(store);
        assert.deepEqual(names(await store.clients.find({ allowedScopes: { $ne: 'admin' } })), ['c0', 'c3']);
      });

      test('$nin on an array field excludes records with any element listed', async (store) => {
        await seed(store);
        assert.deepEqual(names(await store.clients.find({ allowedScopes: { $nin: ['openid'] } })), ['c2', 'c3']);
      });

      test('$or matches records that match any branch, and combines with other fields', async (store) => {
        await seed(store);
        assert.deepEqual(names(await store.clients.find({ $or: [{ clientId: 'c0' }, { secretHash: 'h2' }] })), ['c0', 'c2']);
        assert.deepEqual(
          names(await store.clients.find({ type: 'CONFIDENTIAL', $or: [{ clientId: 'c0' }, { secretHash: 'h2' }] })), ['c2'],
        );
        assert.deepEqual(
          names(await store.clients.find({ $or: [{ createdAt: { $lt: new Date(1500) } }, { allowedScopes: 'admin' }] })),
          ['c0', 'c1', 'c2'],
        );
      });

      test('$exists tells present fields from absent ones', async (store) => {
        const withField = makeEvent({ action: 'with' });
        const without = makeEvent({ action: 'without' }) as Partial<AuditEvent> & { id: string };
        delete without.requestId;
        await store.events.insert(withField);
        await store.events.insert(without as AuditEvent);
        assert.deepEqual((await store.events.find({ requestId: { $exists: true } })).map((e) => e.action), ['with']);
        assert.deepEqual((await store.events.find({ requestId: { $exists: false } })).map((e) => e.action), ['without']);
      });

      test('a filter on a dotted path reaches into nested objects', async (store) => {
        const a = makeProvider({ deviceFlow: { ...makeProvider().deviceFlow, userCodeLength: 6 } });
        const b = makeProvider();
        await store.providers.insert(a);
        await store.providers.insert(b);
        assert.deepEqual(ids(await store.providers.find({ 'deviceFlow.userCodeLength': 6 })), [a.id]);
      });

      test('an undefined filter value is ignored', async (store) => {
        await seed(store);
        assert.equal((await store.clients.find({ clientId: undefined })).length, 4);
      });

      test('count counts matching records only', async (store) => {
        await seed(store);
        assert.equal(await store.clients.count({}), 4);
        assert.equal(await store.clients.count({ type: 'CONFIDENTIAL' }), 2);
        assert.equal(await store.clients.count({ allowedScopes: 'openid' }), 2);
        assert.equal(await store.clients.count({ clientId: 'nope' }), 0);
      });
    });

    describe('updates and deletes', () => {
      test('updateOne returns the record after the update', async (store) => {
        const user = await store.users.insert(makeUser({ name: 'Old' }));
        const updated = await store.users.updateOne({ id: user.id }, { $set: { name: 'New', isAdmin: true } });
        assert.deepEqual(updated, { ...user, name: 'New', isAdmin: true });
        assert.deepEqual(await store.users.findOne({ id: user.id }), updated);
      });

      test('updateOne returns null and changes nothing when the filter matches nothing', async (store) => {
        const user = await store.users.insert(makeUser({ name: 'Old' }));
        assert.equal(await store.users.updateOne({ id: user.id, isActive: false }, { $set: { name: 'New' } }), null);
        assert.equal(await store.users.updateOne({ id: randomUUID() }, { $set: { name: 'New' } }), null);
        assert.deepEqual(await store.users.findOne({ id: user.id }), user);
        assert.equal(await store.users.count({}), 1, 'no upsert');
      });

      test('updateOne changes exactly one record when several match', async (store) => {
        for (let i = 0; i < 3; i++) await store.events.insert(makeEvent({ action: 'same' }));
        const updated = await store.events.updateOne({ action: 'same' }, { $set: { action: 'changed' } });
        assert.equal(updated?.action, 'changed');
        assert.equal(await store.events.count({ action: 'changed' }), 1);
        assert.equal(await store.events.count({ action: 'same' }), 2);
      });

      test('$inc, $unset, $addToSet and $pull change fields in place', async (store) => {
        const provider = await store.providers.insert(makeProvider({ federatedSourceIds: ['a'] }));
        let updated = await store.providers.updateOne({ id: provider.id }, { $inc: { accessTokenLifetimeSeconds: 60 } });
        assert.equal(updated?.accessTokenLifetimeSeconds, 3660);
        updated = await store.providers.updateOne({ id: provider.id }, { $addToSet: { federatedSourceIds: 'b' } });
        assert.deepEqual(updated?.federatedSourceIds, ['a', 'b']);
        updated = await store.providers.updateOne({ id: provider.id }, { $addToSet: { federatedSourceIds: 'b' } });
        assert.deepEqual(updated?.federatedSourceIds, ['a', 'b'], '$addToSet adds no duplicate');
        updated = await store.providers.updateOne({ id: provider.id }, { $pull: { federatedSourceIds: 'a' } });
        assert.deepEqual(updated?.federatedSourceIds, ['b']);
        updated = await store.providers.updateOne({ id: provider.id }, { $unset: { federatedProviderIds: true } });
        assert.ok(updated && !('federatedProviderIds' in updated));
      });

      test('a $set on a dotted path changes one nested field', async (store) => {
        const provider = await store.providers.insert(makeProvider());
        const updated = await store.providers.updateOne({ id: provider.id }, { $set: { 'deviceFlow.userCodeLength': 12 } });
        assert.deepEqual(updated?.deviceFlow, { ...provider.deviceFlow, userCodeLength: 12 });
      });

      test('the id of a record cannot be changed', async (store) => {
        const user = await store.users.insert(makeUser());
        await assert.rejects(store.users.updateOne({ id: user.id }, { $set: { id: 'other' } }));
        assert.ok(await store.users.findOne({ id: user.id }));
      });

      test('updateMany updates every match and returns how many matched', async (store) => {
        const family = randomUUID();
        for (let i = 0; i < 3; i++) await store.refreshTokens.insert(makeRefreshToken({ familyId: family }));
        const other = await store.refreshTokens.insert(makeRefreshToken());
        const now = new Date();
        assert.equal(await store.refreshTokens.updateMany({ familyId: family }, { $set: { revokedAt: now } }), 3);
        assert.equal(await store.refreshTokens.count({ revokedAt: { $ne: null } }), 3);
        assert.equal((await store.refreshTokens.findOne({ id: other.id }))?.revokedAt, null);
        assert.equal(await store.refreshTokens.updateMany({ familyId: 'none' }, { $set: { revokedAt: now } }), 0);
      });

      test('updateMany counts a matched record even when the update leaves it as it was', async (store) => {
        await store.users.insert(makeUser({ isActive: true }));
        await store.users.insert(makeUser({ isActive: false }));
        assert.equal(await store.users.updateMany({}, { $set: { isActive: true } }), 2);
      });

      test('deleteOne removes one matching record and tells whether it did', async (store) => {
        for (let i = 0; i < 2; i++) await store.events.insert(makeEvent({ action: 'x' }));
        assert.equal(await store.events.deleteOne({ action: 'x' }), true);
        assert.equal(await store.events.count({}), 1);
        assert.equal(await store.events.deleteOne({ action: 'nope' }), false);
        assert.equal(await store.events.count({}), 1);
      });

      test('deleteMany removes every match and returns how many', async (store) => {
        for (let i = 0; i < 3; i++) await store.events.insert(makeEvent({ action: 'x' }));
        const keep = await store.events.insert(makeEvent({ action: 'keep' }));
        assert.equal(await store.events.deleteMany({ action: 'x' }), 3);
        assert.deepEqual(ids(await store.events.find({})), [keep.id]);
        assert.equal(await store.events.deleteMany({ action: 'x' }), 0);
      });

      test('a deleted id can be inserted again', async (store) => {
        const user = await store.users.insert(makeUser());
        assert.equal(await store.users.deleteOne({ id: user.id }), true);
        await store.users.insert(user);
        assert.deepEqual(await store.users.findOne({ id: user.id }), user);
      });
    });

    describe('JSON fields', () => {
      const awkward = {
        'kubernetes.io': { namespace: 'prod', 'serviceaccount.name': 'ci' },
        $ne: 'not an operator',
        $where: { $gt: 1 },
        'a.b.c': [1, 'two', { $in: [null, true] }],
        nested: { deeper: { list: [{ x: 1 }, { y: [] }], empty: {} } },
        unicode: 'zażółć 🔑',
        nothing: null,
      };

      test('users.attributes with dotted and $-prefixed keys and nested objects round-trip', async (store) => {
        const user = await store.users.insert(makeUser({ attributes: awkward }));
        assert.deepEqual(user.attributes, awkward);
        assert.deepEqual((await store.users.findOne({ id: user.id }))?.attributes, awkward);
        assert.deepEqual((await store.users.find({ username: user.username }))[0]?.attributes, awkward);
      });

      test('a $set of users.attributes replaces them whole and round-trips', async (store) => {
        const user = await store.users.insert(makeUser({ attributes: { old: true, keep: 'no' } }));
        const updated = await store.users.updateOne({ id: user.id }, { $set: { attributes: awkward } });
        assert.deepEqual(updated?.attributes, awkward);
        assert.deepEqual((await store.users.findOne({ id: user.id }))?.attributes, awkward);
        const many = await store.users.updateMany({ id: user.id }, { $set: { attributes: { 'x.y': { $z: 1 } } } });
        assert.equal(many, 1);
        assert.deepEqual((await store.users.findOne({ id: user.id }))?.attributes, { 'x.y': { $z: 1 } });
      });

      test('a JSON field is set whole, never through a dotted path into it', async (store) => {
        const user = await store.users.insert(makeUser({ attributes: { a: 1 } }));
        await assert.rejects(store.users.updateOne({ id: user.id }, { $set: { 'attributes.a': 2 } }));
        assert.deepEqual((await store.users.findOne({ id: user.id }))?.attributes, { a: 1 });
      });

      test('events.context and signingKeys.publicJwk round-trip as JSON', async (store) => {
        const event = await store.events.insert(makeEvent({ context: { 'client.id': 'x', $op: [1, { 'a.b': null }] } }));
        assert.deepEqual((await store.events.findOne({ id: event.id }))?.context, { 'client.id': 'x', $op: [1, { 'a.b': null }] });
        const jwk = { kty: 'EC', crv: 'P-256', x: 'abc', y: 'def', kid: 'k1' };
        await store.signingKeys.insert({
          id: 'k1', providerId: 'p', algorithm: 'ES256', publicJwk: jwk, encryptedPrivateJwk: 'jwe', active: true, createdAt: new Date(),
        });
        assert.deepEqual((await store.signingKeys.findOne({ id: 'k1' }))?.publicJwk, jwk);
      });
    });

    describe('insertMany', () => {
      test('insertMany stores every record of a batch, JSON fields included', async (store) => {
        const batch = [makeEvent({ context: { 'kubernetes.io': { $ne: 'x' } } }), makeEvent(), makeEvent()];
        await store.events.insertMany(batch);
        await store.events.insertMany([]);
        assert.equal(await store.events.count({}), 3);
        assert.deepEqual((await store.events.findOne({ id: batch[0]!.id }))?.context, { 'kubernetes.io': { $ne: 'x' } });
      });

      test('insertMany stores the records that do not collide, then is a ConflictError', async (store) => {
        await store.users.insert(makeUser({ username: 'ada' }));
        const fresh = makeUser({ username: 'bob' });
        await rejectsWithConflict(store.users.insertMany([makeUser({ username: 'ada' }), fresh]), 'users', 'username');
        assert.ok(await store.users.findOne({ id: fresh.id }));
        assert.equal(await store.users.count({}), 2);
      });
    });

    describe('unique keys', () => {
      test('a duplicate providers.slug is a ConflictError naming slug', async (store) => {
        const first = await store.providers.insert(makeProvider({ slug: 'acme' }));
        await rejectsWithConflict(store.providers.insert(makeProvider({ slug: 'acme' })), 'providers', 'slug');
        assert.deepEqual(ids(await store.providers.find({})), [first.id], 'nothing was inserted');
      });

      test('a duplicate clients.clientId is a ConflictError naming clientId', async (store) => {
        await store.clients.insert(makeClient({ clientId: 'cli' }));
        await rejectsWithConflict(store.clients.insert(makeClient({ clientId: 'cli' })), 'clients', 'clientId');
        assert.equal(await store.clients.count({}), 1);
      });

      test('a duplicate users.username is a ConflictError naming username', async (store) => {
        await store.users.insert(makeUser({ username: 'ada' }));
        await rejectsWithConflict(store.users.insert(makeUser({ username: 'ada' })), 'users', 'username');
        assert.equal(await store.users.count({}), 1);
      });

      test('a duplicate id is a ConflictError naming id', async (store) => {
        const user = await store.users.insert(makeUser());
        await rejectsWithConflict(store.users.insert(makeUser({ id: user.id })), 'users', 'id');
        const event = await store.events.insert(makeEvent());
        await rejectsWithConflict(store.events.insert(makeEvent({ id: event.id })), 'events', 'id');
        assert.equal(await store.users.count({}), 1);
        assert.equal(await store.events.count({}), 1);
      });

      test('with two unique keys the ConflictError names the one that collided', async (store) => {
        const first = await store.deviceAuthorizations.insert(makeDeviceAuthorization());
        await rejectsWithConflict(
          store.deviceAuthorizations.insert(makeDeviceAuthorization({ userCode: first.userCode })), 'deviceAuthorizations', 'userCode',
        );
        await rejectsWithConflict(
          store.deviceAuthorizations.insert(makeDeviceAuthorization({ deviceCodeHash: first.deviceCodeHash })),
          'deviceAuthorizations', 'deviceCodeHash',
        );
        assert.equal(await store.deviceAuthorizations.count({}), 1);
      });

      test('an update that takes a unique value is a ConflictError naming the field, and changes nothing', async (store) => {
        await store.users.insert(makeUser({ username: 'ada' }));
        const bob = await store.users.insert(makeUser({ username: 'bob' }));
        await rejectsWithConflict(store.users.updateOne({ id: bob.id }, { $set: { username: 'ada' } }), 'users', 'username');
        assert.equal((await store.users.findOne({ id: bob.id }))?.username, 'bob');
        const first = await store.deviceAuthorizations.insert(makeDeviceAuthorization());
        const second = await store.deviceAuthorizations.insert(makeDeviceAuthorization());
        await rejectsWithConflict(
          store.deviceAuthorizations.updateOne({ id: second.id }, { $set: { userCode: first.userCode } }),
          'deviceAuthorizations', 'userCode',
        );
        await rejectsWithConflict(
          store.users.updateMany({ id: bob.id }, { $set: { username: 'ada' } }), 'users', 'username',
        );
      });

      test('a unique field may repeat across collections and after the holder is deleted', async (store) => {
        await store.providers.insert(makeProvider({ slug: 'same' }));
        await store.federatedSources.insert({
          id: randomUUID(), name: 'x', slug: 'same', issuer: null, audience: null, jwksUrl: null, oidcDiscoveryUrl: null,
          jwks: null, keysFetchedAt: null, createdAt: new Date(), updatedAt: new Date(),
        });
        await store.providers.deleteOne({ slug: 'same' });
        await store.providers.insert(makeProvider({ slug: 'same' }));
        assert.equal(await store.providers.count({ slug: 'same' }), 1);
      });

      test('unique appPasswords.secretHash is a ConflictError naming secretHash', async (store) => {
        await store.appPasswords.insert(makeAppPassword({ secretHash: 'h' }));
        await rejectsWithConflict(store.appPasswords.insert(makeAppPassword({ secretHash: 'h' })), 'appPasswords', 'secretHash');
      });
    });

    describe('unique keys of specs.ts (sparse, identity keys)', () => {
      /** A record of `collection` for the store: the contract's maker where there is one, else a bare record. */
      const recordOf = (collection: string): Record<string, unknown> & { id: string } => {
        const makers: Record<string, () => { id: string }> = {
          providers: makeProvider, clients: makeClient, users: makeUser, appPasswords: makeAppPassword,
          deviceAuthorizations: makeDeviceAuthorization, refreshTokens: makeRefreshToken,
        };
        return { ...(makers[collection]?.() ?? { id: randomUUID(), createdAt: new Date() }) } as Record<string, unknown> & { id: string };
      };
      type AnyCollection = { insert(doc: { id: string }): Promise<unknown>; count(filter: object): Promise<number> };

      test('every unique field of specs.ts lets records without it coexist, and refuses a second record with its value', async (store) => {
        for (const collection of COLLECTION_NAMES) {
          const col = (store as unknown as Record<string, AnyCollection>)[collection]!;
          for (const field of COLLECTION_SPECS[collection].unique) {
            await col.insert((({ [field]: _, ...rest }) => rest)(recordOf(collection)) as { id: string });
            await col.insert((({ [field]: _, ...rest }) => rest)(recordOf(collection)) as { id: string });
            const value = `same-${short()}`;
            await col.insert({ ...recordOf(collection), [field]: value });
            await rejectsWithConflict(col.insert({ ...recordOf(collection), [field]: value }), collection, field);
            assert.equal(await col.count({ [field]: value }), 1, `${collection}.${field}`);
          }
        }
      });
    });

    describe('substring search (a literal $regex, as the users search sends it)', () => {
      const contains = (text: string): Operators =>
        ({ $regex: new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'i') }) as unknown as Operators;
      const search = (text: string): Filter => ({ $or: [{ username: contains(text) }, { name: contains(text) }, { email: contains(text) }] });
      const usernames = (users: User[]): string[] => users.map((u) => u.username).sort();

      async function seed(store: Store): Promise<void> {
        await store.users.insert(makeUser({ username: 'ada.lovelace', name: 'Ada Lovelace', email: 'ada@example.org' }));
        await store.users.insert(makeUser({ username: 'grace', name: 'Grace Hopper', email: 'GRACE@NAVY.MIL' }));
        await store.users.insert(makeUser({ username: 'adaxlovelace', name: null, email: null }));
        await store.users.insert(makeUser({ username: 'zofia', name: 'Zażółć Gęślą', email: 'z@example.org' }));
      }

      test('finds the text in any of the fields, in any case, as a literal', async (store) => {
        await seed(store);
        assert.deepEqual(usernames(await store.users.find(search('LOVELACE'))), ['ada.lovelace', 'adaxlovelace']);
        assert.deepEqual(usernames(await store.users.find(search('ada.l'))), ['ada.lovelace'], 'the dot is a dot');
        assert.deepEqual(usernames(await store.users.find(search('navy.mil'))), ['grace']);
        assert.deepEqual(usernames(await store.users.find(search('example.org'))), ['ada.lovelace', 'zofia']);
        assert.deepEqual(usernames(await store.users.find(search('ce'))), ['ada.lovelace', 'adaxlovelace', 'grace'], 'under three letters too');
        assert.deepEqual(usernames(await store.users.find(search('ŻÓŁ'))), ['zofia'], 'letters beyond ASCII, in any case');
        assert.deepEqual(await store.users.find(search('(a|g)')), [], 'regex characters are literal');
        assert.equal(await store.users.count(search('ada')), 2);
        assert.deepEqual(usernames(await store.users.find({ $and: [{ type: 'INTERNAL' }, search('hopper')] })), ['grace']);
      });

      test('follows updates and deletes of the searched fields', async (store) => {
        await seed(store);
        const grace = await store.users.findOne({ username: 'grace' });
        await store.users.updateOne({ id: grace!.id }, { $set: { name: 'Admiral Brewster' } });
        assert.deepEqual(usernames(await store.users.find(search('brewster'))), ['grace']);
        assert.deepEqual(await store.users.find(search('hopper')), []);
        await store.users.deleteOne({ id: grace!.id });
        assert.deepEqual(await store.users.find(search('brewster')), []);
        assert.deepEqual(await store.users.find(search('navy')), []);
      });
    });

    describe('DPoP replay record (dpopProofs)', () => {
      const htu = 'https://id.example.com/application/o/token/';
      test('a duplicate dpopProofs.jtiHash is a ConflictError naming jtiHash; an expired one no longer holds it', async (store) => {
        const record = (jtiHash: string, expiresAt: Date) => ({ id: randomUUID(), jtiHash, expiresAt, createdAt: new Date() });
        await store.dpopProofs.insert(record('h', new Date(Date.now() + 60_000)));
        await rejectsWithConflict(store.dpopProofs.insert(record('h', new Date(Date.now() + 60_000))), 'dpopProofs', 'jtiHash');
        await store.dpopProofs.insert(record('old', new Date(Date.now() - 1000)));
        await store.dpopProofs.insert(record('old', new Date(Date.now() + 60_000)));
      });

      test('a proof accepted by one server process is refused by a second one on the same store, also when both race', async (store) => {
        // Two verifiers stand for two processes: they share nothing but the store.
        const first = new DpopVerifier(store, 'secret');
        const second = new DpopVerifier(store, 'secret');
        const key = await proofKey();
        const proof = await makeProof(key, { htu });
        await first.verify(proof, { method: 'POST', url: htu });
        await assert.rejects(second.verify(proof, { method: 'POST', url: htu }), /invalid_dpop_proof: the DPoP proof was used before/);
        const raced = await makeProof(key, { htu });
        const results = await Promise.allSettled([first.verify(raced, { method: 'POST', url: htu }), second.verify(raced, { method: 'POST', url: htu })]);
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, 'exactly one of two racing uses wins');
      });
    });

    describe('expiry', () => {
      // MongoDB's TTL monitor removes expired records about once a minute: its adapter leaves them
      // out of reads, updates and unique keys until then, so both stores answer the same.
      test('a record past its TTL field is not returned by find, findOne or count, nor updated', async (store) => {
        const expired = await store.revokedTokens.insert(makeRevokedToken({ expiresAt: new Date(Date.now() - 1000) }));
        const live = await store.revokedTokens.insert(makeRevokedToken());
        assert.equal(await store.revokedTokens.findOne({ id: expired.id }), null);
        assert.deepEqual(ids(await store.revokedTokens.find({})), [live.id]);
        assert.equal(await store.revokedTokens.count({}), 1);
        const expiredToken = await store.refreshTokens.insert(makeRefreshToken({ expiresAt: new Date(Date.now() - 1000) }));
        assert.equal(await store.refreshTokens.findOne({ tokenHash: expiredToken.tokenHash }), null);
        const expiredUser = await store.users.insert(makeUser({ expiresAt: new Date(Date.now() - 1000) }));
        assert.equal(await store.users.findOne({ username: expiredUser.username }), null);
        assert.equal(await store.users.updateOne({ id: expiredUser.id }, { $set: { name: 'x' } }), null);
      });

      test('an expired record no longer holds its unique key', async (store) => {
        const old = await store.users.insert(makeUser({ username: 'gsa-1', expiresAt: new Date(Date.now() - 1000) }));
        const fresh = await store.users.insert(makeUser({ username: 'gsa-1' }));
        assert.deepEqual(await store.users.findOne({ username: 'gsa-1' }), fresh);
        await store.users.insert(makeUser({ id: old.id })); // nor its id
      });

      test('a record whose TTL field is null or in the future is kept', async (store) => {
        const forever = await store.users.insert(makeUser({ expiresAt: null }));
        const later = await store.users.insert(makeUser({ expiresAt: new Date(Date.now() + HOUR) }));
        assert.deepEqual(sortedIds(await store.users.find({})), [forever.id, later.id].sort());
      });

      test('a device authorization expired less than an hour ago is still found (kept an hour past expiry)', async (store) => {
        const expired = await store.deviceAuthorizations.insert(makeDeviceAuthorization({ expiresAt: new Date(Date.now() - HOUR + 60_000) }));
        assert.ok(await store.deviceAuthorizations.findOne({ deviceCodeHash: expired.deviceCodeHash }));
      });

      test('a device authorization expired more than an hour ago is gone', async (store) => {
        const old = await store.deviceAuthorizations.insert(makeDeviceAuthorization({ expiresAt: new Date(Date.now() - HOUR - 60_000) }));
        assert.equal(await store.deviceAuthorizations.findOne({ deviceCodeHash: old.deviceCodeHash }), null);
      });

      test('every TTL field of specs.ts has a TTL index, and every unique key a unique index (MongoDB)', async (store, t) => {
        if (store.kind !== 'mongodb') return t.skip('the embedded store expires records on read');
        const connection = (store as Store & { mongooseConnection?: { db?: MongoDbHandle } }).mongooseConnection;
        assert.ok(connection?.db, 'the MongoDB adapter exposes mongooseConnection');
        const db: MongoDbHandle = connection.db;
        for (const collection of COLLECTION_NAMES) {
          const spec = COLLECTION_SPECS[collection];
          const indexes: IndexInfo[] = await db.collection(collection).listIndexes().toArray();
          const byField = (field: string): IndexInfo | undefined =>
            indexes.find((index) => Object.keys(index.key).length === 1 && field in index.key);
          if (spec.ttl) {
            const ttl: IndexInfo | undefined = byField(spec.ttl.field);
            assert.ok(ttl, `${collection}.${spec.ttl.field} is indexed`);
            assert.equal(ttl.expireAfterSeconds, spec.ttl.afterSeconds, `${collection}.${spec.ttl.field} expires`);
          }
          for (const field of spec.unique) assert.equal(byField(field)?.unique, true, `${collection}.${field} is unique`);
        }
      });
    });

    describe('atomic rules (repositories)', () => {
      test('an approved device authorization is exchanged exactly once under concurrency', async (store) => {
        const da = await store.deviceAuthorizations.insert(makeDeviceAuthorization({ status: 'approved', userId: 'u' }));
        const results = await Promise.all([
          store.deviceAuthorizationRepository.markExchanged(da.id),
          store.deviceAuthorizationRepository.markExchanged(da.id),
        ]);
        assert.equal(results.filter((r) => r !== null).length, 1);
        assert.equal(results.find((r) => r !== null)?.status, 'exchanged');
        assert.equal(await store.deviceAuthorizationRepository.markExchanged(da.id), null, 'and never again');
      });

      test('a pending or denied device authorization cannot be exchanged', async (store) => {
        const pending = await store.deviceAuthorizations.insert(makeDeviceAuthorization());
        const denied = await store.deviceAuthorizations.insert(makeDeviceAuthorization({ status: 'denied' }));
        assert.equal(await store.deviceAuthorizationRepository.markExchanged(pending.id), null);
        assert.equal(await store.deviceAuthorizationRepository.markExchanged(denied.id), null);
      });

      test('a refresh token is spent exactly once by 20 concurrent spends', async (store) => {
        const token = await store.refreshTokens.insert(makeRefreshToken());
        const now = new Date();
        const results = await Promise.all(
          Array.from({ length: 20 }, () => store.refreshTokenRepository.spend(token.tokenHash, now)),
        );
        const winners = results.filter((r) => r !== null);
        assert.equal(winners.length, 1);
        assert.equal(winners[0]?.usedAt?.getTime(), now.getTime());
        assert.equal((await store.refreshTokens.findOne({ id: token.id }))?.usedAt?.getTime(), now.getTime());
      });

      test('a revoked or expired refresh token cannot be spent', async (store) => {
        const now = new Date();
        const revoked = await store.refreshTokens.insert(makeRefreshToken({ revokedAt: now }));
        assert.equal(await store.refreshTokenRepository.spend(revoked.tokenHash, now), null);
        const token = await store.refreshTokens.insert(makeRefreshToken({ expiresAt: new Date(now.getTime() + 1000) }));
        assert.equal(await store.refreshTokenRepository.spend(token.tokenHash, new Date(now.getTime() + 2000)), null);
        assert.equal(await store.refreshTokenRepository.spend('unknown', now), null);
      });

      test('revokeFamily revokes every live token of the family once', async (store) => {
        const family = randomUUID();
        const now = new Date();
        const earlier = new Date(now.getTime() - 60_000);
        await store.refreshTokens.insert(makeRefreshToken({ familyId: family }));
        await store.refreshTokens.insert(makeRefreshToken({ familyId: family, usedAt: earlier }));
        const alreadyRevoked = await store.refreshTokens.insert(makeRefreshToken({ familyId: family, revokedAt: earlier }));
        const stranger = await store.refreshTokens.insert(makeRefreshToken());
        assert.equal(await store.refreshTokenRepository.revokeFamily(family, now), 2);
        assert.equal(await store.refreshTokenRepository.revokeFamily(family, now), 0);
        assert.equal((await store.refreshTokens.findOne({ id: alreadyRevoked.id }))?.revokedAt?.getTime(), earlier.getTime());
        assert.equal((await store.refreshTokens.findOne({ id: stranger.id }))?.revokedAt, null);
      });

      test('the first poll is accepted and sets nextPollAt one interval later', async (store) => {
        const da = await store.deviceAuthorizations.insert(makeDeviceAuthorization({ intervalSeconds: 5 }));
        const t0 = Date.now();
        const outcome = await store.deviceAuthorizationRepository.recordPoll(da, t0);
        assert.ok(outcome.kind === 'accepted', outcome.kind);
        assert.equal(outcome.authorization.nextPollAt, t0 + 5000);
        assert.equal(outcome.authorization.intervalSeconds, 5);
      });

      test('a poll before nextPollAt is too_soon and adds 5 s to the interval and to nextPollAt', async (store) => {
        const da = await store.deviceAuthorizations.insert(makeDeviceAuthorization({ intervalSeconds: 5 }));
        const repo = store.deviceAuthorizationRepository;
        const t0 = Date.now();
        const first = await repo.recordPoll(da, t0);
        assert.ok(first.kind === 'accepted');
        const second = await repo.recordPoll(first.authorization, t0 + 1000);
        assert.ok(second.kind === 'too_soon', second.kind);
        assert.equal(second.authorization.intervalSeconds, 10);
        assert.equal(second.authorization.nextPollAt, t0 + 5000 + 5000);
        const stored = await store.deviceAuthorizations.findOne({ id: da.id });
        assert.equal(stored?.intervalSeconds, 10);
        assert.equal(stored?.nextPollAt, t0 + 10_000);
      });

      test('a poll at or after nextPollAt is accepted, at the current interval', async (store) => {
        const da = await store.deviceAuthorizations.insert(makeDeviceAuthorization({ intervalSeconds: 5 }));
        const repo = store.deviceAuthorizationRepository;
        const t0 = Date.now();
        const first = await repo.recordPoll(da, t0);
        assert.ok(first.kind === 'accepted');
        const slowed = await repo.recordPoll(first.authorization, t0 + 1000);
        assert.ok(slowed.kind === 'too_soon');
        const third = await repo.recordPoll(slowed.authorization, t0 + 10_000);
        assert.ok(third.kind === 'accepted', third.kind);
        assert.equal(third.authorization.intervalSeconds, 10);
        assert.equal(third.authorization.nextPollAt, t0 + 20_000);
      });

      test('a poll judged with a stale copy of the record uses the stored interval', async (store) => {
        const da = await store.deviceAuthorizations.insert(makeDeviceAuthorization({ intervalSeconds: 5 }));
        const repo = store.deviceAuthorizationRepository;
        const t0 = Date.now();
        await repo.recordPoll(da, t0);
        await repo.recordPoll(da, t0 + 1000); // too_soon: interval 10, nextPollAt t0 + 10 s
        const late = await repo.recordPoll(da, t0 + 10_000); // `da` still says 5 s
        assert.ok(late.kind === 'accepted');
        assert.equal(late.authorization.nextPollAt, t0 + 20_000);
        const early = await repo.recordPoll(da, t0 + 11_000);
        assert.ok(early.kind === 'too_soon');
        assert.equal(early.authorization.intervalSeconds, 15);
      });

      test('of two concurrent first polls one is accepted and the other is too_soon', async (store) => {
        const da = await store.deviceAuthorizations.insert(makeDeviceAuthorization({ intervalSeconds: 5 }));
        const t0 = Date.now();
        const outcomes = await Promise.all([
          store.deviceAuthorizationRepository.recordPoll(da, t0),
          store.deviceAuthorizationRepository.recordPoll(da, t0),
        ]);
        assert.deepEqual(outcomes.map((o) => o.kind).sort(), ['accepted', 'too_soon']);
      });

      test('a poll for a record that is gone is unknown', async (store) => {
        const da = makeDeviceAuthorization();
        assert.deepEqual(await store.deviceAuthorizationRepository.recordPoll(da, Date.now()), { kind: 'unknown' });
      });

      test('a poll on a record stored without nextPollAt is accepted rather than looping', async (store) => {
        const da = makeDeviceAuthorization() as Partial<DeviceAuthorization> & { id: string };
        delete da.nextPollAt;
        await store.deviceAuthorizations.insert(da as DeviceAuthorization);
        const outcome = await store.deviceAuthorizationRepository.recordPoll(da as DeviceAuthorization, Date.now());
        assert.equal(outcome.kind, 'accepted');
      });

      test('decide moves a pending authorization to approved or denied, with the user and time', async (store) => {
        const now = new Date();
        const a = await store.deviceAuthorizations.insert(makeDeviceAuthorization());
        const approved = await store.deviceAuthorizationRepository.decide(a.id, 'approved', 'user-1', now);
        assert.equal(approved?.status, 'approved');
        assert.equal(approved?.userId, 'user-1');
        assert.equal(approved?.decidedAt?.getTime(), now.getTime());
        const b = await store.deviceAuthorizations.insert(makeDeviceAuthorization());
        assert.equal((await store.deviceAuthorizationRepository.decide(b.id, 'denied', 'user-2', now))?.status, 'denied');
      });

      test('decide refuses an already-decided authorization', async (store) => {
        const now = new Date();
        const da = await store.deviceAuthorizations.insert(makeDeviceAuthorization());
        const results = await Promise.all([
          store.deviceAuthorizationRepository.decide(da.id, 'approved', 'user-1', now),
          store.deviceAuthorizationRepository.decide(da.id, 'denied', 'user-2', now),
        ]);
        assert.equal(results.filter((r) => r !== null).length, 1);
        assert.equal(await store.deviceAuthorizationRepository.decide(da.id, 'denied', 'user-2', now), null);
        const stored = await store.deviceAuthorizations.findOne({ id: da.id });
        assert.equal(stored?.status, results.find((r) => r !== null)?.status);
      });

      test('decide refuses an expired authorization', async (store) => {
        const now = new Date();
        const da = await store.deviceAuthorizations.insert(makeDeviceAuthorization({ expiresAt: new Date(now.getTime() - 1000) }));
        assert.equal(await store.deviceAuthorizationRepository.decide(da.id, 'approved', 'user-1', now), null);
        assert.equal((await store.deviceAuthorizations.findOne({ id: da.id }))?.status, 'pending');
      });
    });

    describe('signing-key rotation (conditional updates)', () => {
      const SECRET = 'contract-test-secret-key-0123456789abcdef';
      const DAY = 86_400_000;
      /** A provider with keys, as two processes (each its own key service and scheduler) on one store see it. */
      async function twoProcesses(store: Store, clock: () => number) {
        const provider = await store.providers.insert(makeProvider({ keyRotationDays: 1 }));
        const processes = [0, 1].map(() => {
          const keys = new SigningKeyService(store, SECRET, clock);
          return { keys, scheduler: new KeyRotationScheduler(store, keys, clock, () => undefined) };
        });
        await processes[0]!.keys.createKey(provider.id, 'ES256');
        const statuses = async () => (await store.signingKeys.find({ providerId: provider.id })).map((r) => r.status).sort();
        return { provider, processes, statuses };
      }

      test('two schedulers ticking at once when a rotation is due rotate once', async (store) => {
        let now = Date.now();
        const { processes, statuses } = await twoProcesses(store, () => now);
        assert.deepEqual(await statuses(), ['CURRENT', 'NEXT']);
        now += DAY + 60_000;
        const rotations = await Promise.all(processes.map((p) => p.scheduler.tick()));
        assert.equal(rotations[0]! + rotations[1]!, 1);
        assert.deepEqual(await statuses(), ['CURRENT', 'NEXT', 'PREVIOUS']);
        assert.deepEqual(await Promise.all(processes.map((p) => p.scheduler.tick())), [0, 0], 'and not again');
      });

      test('two processes rotating the same keys at once rotate once', async (store) => {
        const { provider, processes, statuses } = await twoProcesses(store, () => Date.now());
        const rotated = await Promise.all(processes.map((p) => p.keys.rotate(provider.id)));
        assert.equal(rotated.filter(Boolean).length, 1);
        assert.deepEqual(await statuses(), ['CURRENT', 'NEXT', 'PREVIOUS']);
      });

      test('a provider gets one NEXT key however many processes make one at once', async (store) => {
        const { provider, processes, statuses } = await twoProcesses(store, () => Date.now());
        const next = await store.signingKeys.findOne({ providerId: provider.id, status: 'NEXT' });
        await store.signingKeys.deleteOne({ id: next!.id });
        await Promise.all([...processes, ...processes].map((p) => p.keys.settle(provider.id)));
        assert.deepEqual(await statuses(), ['CURRENT', 'NEXT']);
      });

      test('retiring the NEXT key while another process rotates to it leaves one CURRENT key, not the retired one', async (store) => {
        for (let round = 0; round < 3; round++) {
          const { provider, processes } = await twoProcesses(store, () => Date.now());
          const next = await store.signingKeys.findOne({ providerId: provider.id, status: 'NEXT' });
          await Promise.all([processes[0]!.keys.rotate(provider.id), processes[1]!.keys.retire(next!.id)]);
          const records = await store.signingKeys.find({ providerId: provider.id });
          const current = records.filter((r) => r.status === 'CURRENT');
          assert.equal(current.length, 1, JSON.stringify(records.map((r) => r.status)));
          assert.notEqual(current[0]!.id, next!.id);
          assert.equal(records.find((r) => r.id === next!.id)!.status, 'RETIRED');
          assert.equal(records.filter((r) => r.status === 'NEXT').length, 1);
        }
      });

      test('a rotation cut short (two CURRENT keys, no NEXT) is finished, not repeated: one CURRENT, the newest', async (store) => {
        const { provider, processes, statuses } = await twoProcesses(store, () => Date.now());
        const next = await store.signingKeys.findOne({ providerId: provider.id, status: 'NEXT' });
        // The state a crash right after the promotion leaves.
        await store.signingKeys.updateOne({ id: next!.id }, { $set: { status: 'CURRENT', activatedAt: new Date(Date.now() + 1) }, $unset: { nextOf: true } });
        assert.equal((await processes[1]!.keys.activeKey(provider.id)).kid, next!.id, 'the newest CURRENT signs meanwhile');
        assert.equal(await processes[1]!.keys.rotate(provider.id), false);
        assert.deepEqual(await statuses(), ['CURRENT', 'NEXT', 'PREVIOUS']);
        assert.equal((await store.signingKeys.findOne({ providerId: provider.id, status: 'CURRENT' }))!.id, next!.id);
      });

      test('a scheduler tick settles keys a failure left unsettled (two CURRENT, no NEXT), without rotating', async (store) => {
        const { provider, processes, statuses } = await twoProcesses(store, () => Date.now());
        await store.providers.updateOne({ id: provider.id }, { $set: { keyRotationDays: null } });
        const next = await store.signingKeys.findOne({ providerId: provider.id, status: 'NEXT' });
        await store.signingKeys.updateOne({ id: next!.id }, { $set: { status: 'CURRENT', activatedAt: new Date(Date.now() + 1) }, $unset: { nextOf: true } });
        assert.equal(await processes[0]!.scheduler.tick(), 0);
        assert.deepEqual(await statuses(), ['CURRENT', 'NEXT', 'PREVIOUS']);
        assert.equal((await store.signingKeys.findOne({ providerId: provider.id, status: 'CURRENT' }))!.id, next!.id);
      });
    });
  });
}

/** The bit of the MongoDB driver's Db that the index test needs (mongoose's connection.db). */
interface MongoDbHandle {
  collection(name: string): { listIndexes(): { toArray(): Promise<IndexInfo[]> } };
}
interface IndexInfo { key: Record<string, unknown>; unique?: boolean; expireAfterSeconds?: number }
