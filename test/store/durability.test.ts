/**
 * The embedded store's promise: a write is committed to the database's WAL before it is
 * acknowledged, so killing the process (kill -9, no chance to flush or checkpoint) loses nothing
 * that was acknowledged, and a clean restart keeps everything. TESSERA_DURABILITY=full adds an
 * fsync per commit (power loss, which a test cannot cause); the kill -9 promise holds in both.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { openEmbeddedStore, type Durability } from '../../src/store/sqlite/sqlite-store.js';
import { ConflictError, withRepositories } from '../../src/store/index.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { makeDeviceAuthorization, makeEvent, makeRevokedToken, makeUser } from './contract.js';
import { withTempDir } from '../helpers/temp-dir.js';

const STORE_MODULE = new URL('../../src/store/sqlite/sqlite-store.js', import.meta.url).href;
const INDEX_MODULE = new URL('../../src/store/index.js', import.meta.url).href;
const KILL_AFTER = 300;

/**
 * The writer: opens the store, then makes every kind of write the server makes, one after another,
 * printing each as soon as its promise resolves: an audit event, a user, an app password, a device
 * authorization approved, a revoked jti, a refresh token rotated (the old one spent, its successor
 * stored), and a counter bumped in place. Bounded, in case nobody kills it.
 */
const WRITER = `
const { openEmbeddedStore } = await import(process.env.TESSERA_STORE_MODULE);
const { withRepositories } = await import(process.env.TESSERA_INDEX_MODULE);
const store = withRepositories(await openEmbeddedStore(process.env.TESSERA_DATA_DIR, { durability: process.env.TESSERA_DURABILITY }));
const say = (line) => process.stdout.write(line + '\\n');
const later = () => new Date(Date.now() + 3600000);
const device = (id, status) => ({
  id, deviceCodeHash: 'dc-' + id, userCode: 'UC-' + id, clientId: 'c', providerId: 'p', scopes: [],
  codeChallenge: null, codeChallengeMethod: null, status, intervalSeconds: 0, nextPollAt: null,
  userId: null, decidedAt: null, expiresAt: later(), createdAt: new Date(),
});
const refresh = (id) => ({
  id, tokenHash: 'th-' + id, familyId: 'family', clientId: 'c', providerId: 'p', userId: 'u', scopes: ['openid'],
  usedAt: null, revokedAt: null, expiresAt: later(), createdAt: new Date(),
});
const counter = await store.deviceAuthorizations.insert(device('counter', 'pending'));
let current = await store.refreshTokens.insert(refresh('refresh-start'));
say('ready');
for (let i = 0; i < 20000; i++) {
  const event = await store.events.insert({
    id: 'event-' + i, action: 'burst', requestId: null, clientId: null, username: null,
    context: { i, 'kubernetes.io': { $ne: 'x' } }, createdAt: new Date(),
  });
  say('event ' + event.id);
  if (i % 3 === 0) {
    const user = await store.users.insert({
      id: 'user-' + i, username: 'user-' + i, name: null, email: null, type: 'INTERNAL', isActive: true, isAdmin: false,
      attributes: { i }, passwordHash: null, expiresAt: null, createdAt: new Date(), updatedAt: new Date(),
    });
    say('user ' + user.id);
    const password = await store.appPasswords.insert({
      id: 'apppw-' + i, userId: user.id, description: null, secretHash: 'secret-' + i, expiresAt: null, lastUsedAt: null, createdAt: new Date(),
    });
    say('apppw ' + password.id);
  }
  const pending = await store.deviceAuthorizations.insert(device('device-' + i, 'pending'));
  if (await store.deviceAuthorizationRepository.decide(pending.id, 'approved', 'user', new Date())) say('approved ' + pending.id);
  const revoked = await store.revokedTokens.insert({ id: 'jti-' + i, expiresAt: later(), createdAt: new Date() });
  say('revoked ' + revoked.id);
  if (await store.refreshTokenRepository.spend(current.tokenHash, new Date())) {
    const next = await store.refreshTokens.insert(refresh('refresh-' + i));
    say('rotated ' + current.id + ' ' + next.id);
    current = next;
  }
  const bumped = await store.deviceAuthorizations.updateOne({ id: counter.id }, { $inc: { intervalSeconds: 1 } });
  say('counter ' + bumped.intervalSeconds);
}
say('done');
`;

interface Burst {
  events: string[];
  users: string[];
  appPasswords: string[];
  approved: string[];
  revoked: string[];
  /** [spent, successor] per acknowledged rotation. */
  rotations: [string, string][];
  counter: number;
  signal: NodeJS.Signals | null;
  code: number | null;
  stderr: string;
}

/** Runs the writer on `dir` and kills it with SIGKILL once `killAfter` events were acknowledged. */
function burstThenKill(dir: string, killAfter: number, durability: Durability): Promise<Burst> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', WRITER], {
      env: { ...process.env, TESSERA_STORE_MODULE: STORE_MODULE, TESSERA_INDEX_MODULE: INDEX_MODULE, TESSERA_DATA_DIR: dir, TESSERA_DURABILITY: durability },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const burst: Burst = {
      events: [], users: [], appPasswords: [], approved: [], revoked: [], rotations: [], counter: 0, signal: null, code: null, stderr: '',
    };
    let pending = '';
    let killed = false;
    const guard = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop()!; // an unfinished line is not an acknowledgement yet
      for (const line of lines) {
        const [kind, value, successor] = line.split(' ');
        if (kind === 'event') burst.events.push(value!);
        else if (kind === 'user') burst.users.push(value!);
        else if (kind === 'apppw') burst.appPasswords.push(value!);
        else if (kind === 'approved') burst.approved.push(value!);
        else if (kind === 'revoked') burst.revoked.push(value!);
        else if (kind === 'rotated') burst.rotations.push([value!, successor!]);
        else if (kind === 'counter') burst.counter = Number(value);
      }
      if (!killed && burst.events.length >= killAfter) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      burst.stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      burst.code = code;
      burst.signal = signal;
      resolve(burst);
    });
  });
}

const lost = (acknowledged: string[], stored: Set<string>): string[] => acknowledged.filter((id) => !stored.has(id));

for (const durability of ['normal', 'full'] as const) {
  test(`a kill -9 in a burst of every kind of write loses no acknowledged write (TESSERA_DURABILITY=${durability})`, { timeout: 30_000 }, async () => {
    await withTempDir('tessera-durability-', async (dir) => {
      const burst = await burstThenKill(dir, KILL_AFTER, durability);
      assert.equal(burst.signal, 'SIGKILL', `the writer was killed mid-burst (exit ${burst.code}): ${burst.stderr}`);
      assert.ok(burst.events.length >= KILL_AFTER, `${burst.events.length} events acknowledged`);
      for (const kind of ['users', 'appPasswords', 'approved', 'revoked', 'rotations'] as const) assert.ok(burst[kind].length > 0, kind);

      const store = withRepositories(await openEmbeddedStore(dir));
      try {
        const events = new Set((await store.events.find({})).map((e) => e.id));
        assert.deepEqual(lost(burst.events, events), [], `acknowledged events lost (of ${burst.events.length})`);
        assert.deepEqual(lost(burst.users, new Set((await store.users.find({})).map((u) => u.id))), [], 'users lost');
        assert.deepEqual(lost(burst.appPasswords, new Set((await store.appPasswords.find({})).map((p) => p.id))), [], 'app passwords lost');
        const approved = new Set((await store.deviceAuthorizations.find({ status: 'approved' })).map((d) => d.id));
        assert.deepEqual(lost(burst.approved, approved), [], 'approvals lost');
        assert.deepEqual(lost(burst.revoked, new Set((await store.revokedTokens.find({})).map((r) => r.id))), [], 'revocations lost');
        const tokens = new Map((await store.refreshTokens.find({})).map((t) => [t.id, t]));
        for (const [spent, successor] of burst.rotations) {
          assert.ok(tokens.get(spent)?.usedAt instanceof Date, `${spent} stays spent`);
          assert.ok(tokens.has(successor), `${successor} was stored`);
        }
        // The records read back whole, JSON fields included.
        const last = await store.events.findOne({ id: burst.events.at(-1)! });
        assert.deepEqual(last?.context, { i: burst.events.length - 1, 'kubernetes.io': { $ne: 'x' } });
        // An acknowledged update in place survives too, and what survives is the writes in the order
        // they were made (the writer may have run ahead of what was read before the kill landed):
        // event i is written before the counter is bumped to i + 1.
        const counter = await store.deviceAuthorizations.findOne({ id: 'counter' });
        assert.ok(counter, 'the counter record survived');
        assert.ok(counter.intervalSeconds >= burst.counter, `counter ${counter.intervalSeconds} >= acknowledged ${burst.counter}`);
        assert.ok(counter.intervalSeconds === events.size - 1 || counter.intervalSeconds === events.size,
          `counter ${counter.intervalSeconds} with ${events.size} events stored`);
        // And the store goes on working, unique keys included.
        await store.events.insert(makeEvent({ id: 'after-restart' }));
        await assert.rejects(store.users.insert(makeUser({ username: burst.users[0]! })), ConflictError);
      } finally {
        await store.close();
      }
    });
  });
}

test('TESSERA_DURABILITY is normal by default, takes full, and refuses anything else', () => {
  assert.equal(loadConfig({}).durability, 'normal');
  assert.equal(loadConfig({ TESSERA_DURABILITY: 'full' }).durability, 'full');
  for (const bad of ['FULL', 'off', 'extra', '1']) {
    assert.throws(() => loadConfig({ TESSERA_DURABILITY: bad }), (e: unknown) => e instanceof ConfigError && e.variable === 'TESSERA_DURABILITY', bad);
  }
});

test('TESSERA_DURABILITY=full sets synchronous=FULL on the database, normal sets NORMAL', async () => {
  for (const [durability, level] of [['full', 2], ['normal', 1]] as const) {
    await withTempDir('tessera-durability-', async (dir) => {
      const store = await openEmbeddedStore(dir, { durability });
      try {
        assert.equal(store.pragma('synchronous'), level, durability);
      } finally {
        await store.close();
      }
    });
  }
});

test('restarting the embedded store (close, then open) keeps records, updates and deletions', { timeout: 15_000 }, async () => {
  await withTempDir('tessera-durability-', async (dir) => {
    const first = withRepositories(await openEmbeddedStore(dir));
    const ada = await first.users.insert(makeUser({ username: 'ada', attributes: { 'kubernetes.io': { ns: 'x' } } }));
    const bob = await first.users.insert(makeUser({ username: 'bob' }));
    const gone = await first.users.insert(makeUser({ username: 'gone' }));
    await first.users.updateOne({ id: bob.id }, { $set: { name: 'Bob', isAdmin: true } });
    await first.users.deleteOne({ id: gone.id });
    const approved = await first.deviceAuthorizations.insert(makeDeviceAuthorization());
    await first.deviceAuthorizationRepository.decide(approved.id, 'approved', ada.id, new Date());
    const live = await first.revokedTokens.insert(makeRevokedToken());
    // Expired already, and not yet swept when the store closes.
    const expired = await first.revokedTokens.insert(makeRevokedToken({ expiresAt: new Date(Date.now() - 1000) }));
    await first.close();

    const second = withRepositories(await openEmbeddedStore(dir));
    try {
      assert.deepEqual(await second.users.findOne({ id: ada.id }), ada);
      const bobAfter = await second.users.findOne({ id: bob.id });
      assert.equal(bobAfter?.name, 'Bob');
      assert.equal(bobAfter?.isAdmin, true);
      assert.ok(bobAfter?.createdAt instanceof Date);
      assert.equal(await second.users.findOne({ id: gone.id }), null);
      assert.equal(await second.users.count({}), 2);
      const decided = await second.deviceAuthorizations.findOne({ id: approved.id });
      assert.equal(decided?.status, 'approved');
      assert.equal(decided?.userId, ada.id);
      assert.ok(decided?.decidedAt instanceof Date);
      // Indexes come back with the data: unique keys and expiry still hold.
      await assert.rejects(second.users.insert(makeUser({ username: 'ada' })), ConflictError);
      assert.ok(await second.revokedTokens.findOne({ id: live.id }));
      assert.equal(await second.revokedTokens.findOne({ id: expired.id }), null, 'records still expire after a restart');
    } finally {
      await second.close();
    }

    // A restart after a restart: nothing is lost by the checkpoint on close either.
    const third = await openEmbeddedStore(dir);
    try {
      assert.equal(await third.users.count({}), 2);
    } finally {
      await third.close();
    }
  });
});
