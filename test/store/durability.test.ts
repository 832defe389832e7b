/**
 * The embedded store's promise: a write is in its datafile before it is acknowledged, so killing
 * the process (kill -9, no chance to flush or compact) loses nothing that was acknowledged, and a
 * clean restart keeps everything.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openEmbeddedStore } from '../../src/store/sqlite/sqlite-store.js';
import { ConflictError, withRepositories } from '../../src/store/index.js';
import { makeDeviceAuthorization, makeEvent, makeRevokedToken, makeUser } from './contract.js';

const STORE_MODULE = new URL('../../src/store/sqlite/sqlite-store.js', import.meta.url).href;
const KILL_AFTER = 300;

/**
 * The writer: opens the store, then writes one record after another, printing each as soon as its
 * promise resolves ("event <id>", "user <id>", "counter <n>"). Bounded, in case nobody kills it.
 */
const WRITER = `
const { openEmbeddedStore } = await import(process.env.TESSERA_STORE_MODULE);
const store = await openEmbeddedStore(process.env.TESSERA_DATA_DIR);
const say = (line) => process.stdout.write(line + '\\n');
const counter = await store.deviceAuthorizations.insert({
  id: 'counter', deviceCodeHash: 'counter', userCode: 'COUNTER', clientId: 'c', providerId: 'p', scopes: [],
  codeChallenge: null, codeChallengeMethod: null, status: 'pending', intervalSeconds: 0, nextPollAt: null,
  userId: null, decidedAt: null, expiresAt: new Date(Date.now() + 3600000), createdAt: new Date(),
});
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
  }
  const bumped = await store.deviceAuthorizations.updateOne({ id: counter.id }, { $inc: { intervalSeconds: 1 } });
  say('counter ' + bumped.intervalSeconds);
}
say('done');
`;

interface Burst {
  events: string[];
  users: string[];
  counter: number;
  signal: NodeJS.Signals | null;
  code: number | null;
  stderr: string;
}

/** Runs the writer on `dir` and kills it with SIGKILL once `killAfter` events were acknowledged. */
function burstThenKill(dir: string, killAfter: number): Promise<Burst> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', WRITER], {
      env: { ...process.env, TESSERA_STORE_MODULE: STORE_MODULE, TESSERA_DATA_DIR: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const burst: Burst = { events: [], users: [], counter: 0, signal: null, code: null, stderr: '' };
    let pending = '';
    let killed = false;
    const guard = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop()!; // an unfinished line is not an acknowledgement yet
      for (const line of lines) {
        const [kind, value] = line.split(' ');
        if (kind === 'event') burst.events.push(value!);
        else if (kind === 'user') burst.users.push(value!);
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

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-durability-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('a kill -9 in the middle of a burst of writes loses nothing that was acknowledged', { timeout: 30_000 }, async () => {
  await withTempDir(async (dir) => {
    const burst = await burstThenKill(dir, KILL_AFTER);
    assert.equal(burst.signal, 'SIGKILL', `the writer was killed mid-burst (exit ${burst.code}): ${burst.stderr}`);
    assert.ok(burst.events.length >= KILL_AFTER, `${burst.events.length} events acknowledged`);
    assert.ok(burst.users.length > 0);

    const store = withRepositories(await openEmbeddedStore(dir));
    try {
      const events = new Set((await store.events.find({})).map((e) => e.id));
      const lostEvents = burst.events.filter((id) => !events.has(id));
      assert.deepEqual(lostEvents, [], `acknowledged events lost (of ${burst.events.length})`);
      const users = new Set((await store.users.find({})).map((u) => u.id));
      assert.deepEqual(burst.users.filter((id) => !users.has(id)), [], 'acknowledged users lost');
      // The records read back whole, JSON fields included.
      const last = await store.events.findOne({ id: burst.events.at(-1)! });
      assert.deepEqual(last?.context, { i: burst.events.length - 1, 'kubernetes.io': { $ne: 'x' } });
      // An acknowledged update survives too.
      const counter = await store.deviceAuthorizations.findOne({ id: 'counter' });
      assert.ok(counter, 'the counter record survived');
      assert.ok(counter.intervalSeconds >= burst.counter, `counter ${counter.intervalSeconds} >= acknowledged ${burst.counter}`);
      // And what survives is the writes in the order they were made (the writer may have run ahead
      // of what was read from its output before the kill landed): event i is written before the
      // counter is bumped to i + 1, so with events 0..n-1 stored the counter is n - 1 or n.
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

test('restarting the embedded store (close, then open) keeps records, updates and deletions', { timeout: 15_000 }, async () => {
  await withTempDir(async (dir) => {
    const first = withRepositories(await openEmbeddedStore(dir));
    const ada = await first.users.insert(makeUser({ username: 'ada', attributes: { 'kubernetes.io': { ns: 'x' } } }));
    const bob = await first.users.insert(makeUser({ username: 'bob' }));
    const gone = await first.users.insert(makeUser({ username: 'gone' }));
    await first.users.updateOne({ id: bob.id }, { $set: { name: 'Bob', isAdmin: true } });
    await first.users.deleteOne({ id: gone.id });
    const approved = await first.deviceAuthorizations.insert(makeDeviceAuthorization());
    await first.deviceAuthorizationRepository.decide(approved.id, 'approved', ada.id, new Date());
    const live = await first.revokedTokens.insert(makeRevokedToken());
    // Expired already, but never read, so still in the datafile when the store closes.
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

    // A restart after a restart: nothing is lost by compaction on close either.
    const third = await openEmbeddedStore(dir);
    try {
      assert.equal(await third.users.count({}), 2);
    } finally {
      await third.close();
    }
  });
});
