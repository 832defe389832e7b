/**
 * src/domain/device-flow.ts: user codes (alphabet, length, uniform draw, entropy), entry
 * normalisation, and the poll clock against a real embedded store with an explicit clock.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  DeviceFlowService, UserCodeSpaceExhaustedError, displayUserCode, formatUserCode, generateUserCode, normalizeUserCode, stripSeparators,
} from '../../src/domain/device-flow.js';
import {
  DEFAULT_DEVICE_FLOW, USER_CODE_ALPHABETS, alphabetIsCaseInsensitive, userCodeAlphabet, userCodeEntropyBits,
} from '../../src/domain/providers.js';
import { openStore, type Store } from '../../src/store/index.js';
import type { DeviceAuthorization, Provider } from '../../src/domain/model.js';

describe('user codes', () => {
  test('are drawn only from the alphabet, at the configured length', () => {
    for (const [charset, alphabet] of Object.entries(USER_CODE_ALPHABETS)) {
      for (const length of [4, 8, 9, 32]) {
        const code = generateUserCode(alphabet, length);
        assert.equal(code.length, length, charset);
        assert.ok([...code].every((c) => alphabet.includes(c)), `${charset}: ${code}`);
      }
    }
  });

  test('the default (BASE20, 8 characters) has more than 20 bits of entropy (RFC 8628 §5.1)', () => {
    const alphabet = userCodeAlphabet(DEFAULT_DEVICE_FLOW);
    assert.equal(alphabet, 'BCDFGHJKLMNPQRSTVWXZ');
    assert.ok(userCodeEntropyBits(DEFAULT_DEVICE_FLOW.userCodeLength, alphabet.length) > 34);
  });

  test('every character of the alphabet is equally likely (no modulo bias)', () => {
    // 7 characters: "random byte % 7" would favour the first 4 by 37:36, a chi-square near 160 over
    // 700,000 draws; a uniform draw stays near 6.
    const alphabet = 'ABCDEFG';
    const counts = new Map<string, number>([...alphabet].map((c) => [c, 0]));
    for (const c of generateUserCode(alphabet, 700_000)) counts.set(c, counts.get(c)! + 1);
    const expected = 100_000;
    const chiSquare = [...counts.values()].reduce((sum, n) => sum + (n - expected) ** 2 / expected, 0);
    // 6 degrees of freedom: p = 0.001 at 22.46.
    assert.ok(chiSquare < 22.46, `chi-square ${chiSquare.toFixed(2)}: ${JSON.stringify([...counts])}`);
  });

  test('codes do not repeat in practice', () => {
    const seen = new Set(Array.from({ length: 2000 }, () => generateUserCode(USER_CODE_ALPHABETS.BASE20, 8)));
    assert.equal(seen.size, 2000);
  });

  test('are shown with a dash in the middle once 6 characters or longer', () => {
    assert.equal(formatUserCode('BCDFGHJK'), 'BCDF-GHJK');
    assert.equal(formatUserCode('123456789'), '12345-6789');
    assert.equal(formatUserCode('BCDF'), 'BCDF');
  });
});

describe('showing a stored code for confirmation', () => {
  test('in the case the device shows it', () => {
    assert.equal(displayUserCode('BCDFGHJK', USER_CODE_ALPHABETS.BASE20), 'BCDF-GHJK');
    assert.equal(displayUserCode('ABCDEF', 'abcdefgh'), 'abc-def', 'a lower-case alphabet is stored upper-cased, shown lower-cased');
    assert.equal(displayUserCode('aBcDeF', 'abcABC'), 'aBc-DeF', 'a case-sensitive alphabet is shown as stored');
    assert.equal(displayUserCode('123456', USER_CODE_ALPHABETS.NUMERIC), '123-456');
  });
});

describe('normalisation on entry', () => {
  test('spaces and dashes are ignored', () => {
    assert.equal(stripSeparators(' BCDF - GHJK '), 'BCDFGHJK');
    assert.equal(stripSeparators('BCDF\u2013GHJK'), 'BCDFGHJK', 'an en dash typed by a phone keyboard');
    assert.equal(stripSeparators('BC\tDF\u00a0GH'), 'BCDFGH');
  });

  test('case is ignored where the alphabet has no case', () => {
    assert.equal(normalizeUserCode('bcdf-ghjk', USER_CODE_ALPHABETS.BASE20), 'BCDFGHJK');
    assert.equal(normalizeUserCode('23ab', USER_CODE_ALPHABETS.ALPHANUMERIC), '23AB');
    assert.ok(alphabetIsCaseInsensitive(USER_CODE_ALPHABETS.BASE20));
  });

  test('case matters where the alphabet tells cases apart', () => {
    const alphabet = 'abcABC123';
    assert.equal(alphabetIsCaseInsensitive(alphabet), false);
    assert.equal(normalizeUserCode('aB-c1', alphabet), 'aBc1');
  });
});

describe('the device authorization lifecycle on a real store', () => {
  let dir: string;
  let store: Store;
  let flow: DeviceFlowService;
  const provider: Provider = {
    id: 'prov', name: 'P', slug: 'p', accessTokenLifetimeSeconds: 600, refreshTokenLifetimeSeconds: 600, signingAlgorithm: 'RS256',
    deviceFlow: { ...DEFAULT_DEVICE_FLOW, pollIntervalSeconds: 1 }, federatedSourceIds: [], federatedProviderIds: [],
    createdAt: new Date(), updatedAt: new Date(),
  };

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-device-unit-'));
    store = await openStore({ mongodbUri: null, dataDir: dir });
    await store.providers.insert(provider);
    flow = new DeviceFlowService(store);
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const start = (now = new Date()) => flow.start({ provider, client: { clientId: 'tv' }, scopes: ['openid'], codeChallenge: null, codeChallengeMethod: null }, now);
  const reload = async (a: DeviceAuthorization) => (await store.deviceAuthorizations.findOne({ id: a.id }))!;

  test('the stored user code is the normalised one; the device code is only hashed', async () => {
    const started = await start();
    assert.equal(started.authorization.userCode, started.userCode.replace('-', ''));
    assert.notEqual(started.authorization.deviceCodeHash, started.deviceCode);
    assert.equal((await flow.findByDeviceCode(started.deviceCode))?.id, started.authorization.id);
  });

  test('a user-code collision on the unique index is retried with a new code', async () => {
    let collided = false;
    const real = store.deviceAuthorizations;
    const colliding = Object.create(real) as typeof real;
    colliding.insert = async (doc) => {
      if (!collided) {
        collided = true;
        // Occupy this very code first, so the real unique index refuses the insert.
        await real.insert({ ...doc, id: `${doc.id}-other`, deviceCodeHash: `${doc.deviceCodeHash}-other` });
      }
      return real.insert(doc);
    };
    const withCollision = new DeviceFlowService({ ...store, deviceAuthorizations: colliding, deviceAuthorizationRepository: store.deviceAuthorizationRepository } as Store);
    const started = await withCollision.start({ provider, client: { clientId: 'tv' }, scopes: [], codeChallenge: null, codeChallengeMethod: null });
    assert.ok(collided);
    assert.ok(await store.deviceAuthorizations.findOne({ id: started.authorization.id }));
  });

  test('a code space with no free code left gives up with UserCodeSpaceExhaustedError, not a crash', async () => {
    const real = store.deviceAuthorizations;
    const full = Object.create(real) as typeof real;
    full.insert = async (doc) => {
      await real.insert({ ...doc, id: `${doc.id}-taken`, deviceCodeHash: `${doc.deviceCodeHash}-taken` });
      return real.insert(doc);
    };
    const crowded = new DeviceFlowService({ ...store, deviceAuthorizations: full, deviceAuthorizationRepository: store.deviceAuthorizationRepository } as Store);
    await assert.rejects(
      crowded.start({ provider, client: { clientId: 'tv' }, scopes: [], codeChallenge: null, codeChallengeMethod: null }),
      UserCodeSpaceExhaustedError,
    );
  });

  test('the poll clock runs from the last accepted poll; slow_down adds 5 s without moving it', async () => {
    const t0 = Date.now();
    const { authorization } = await start(new Date(t0));
    assert.deepEqual(await flow.poll(await reload(authorization), t0), { kind: 'pending' }, 'the first poll is never too early');
    assert.deepEqual(await flow.poll(await reload(authorization), t0 + 500), { kind: 'slow_down', intervalSeconds: 6 });
    // Had the slow_down poll restarted the clock, t0 + 6000 would still be too early (t0 + 6500).
    assert.deepEqual(await flow.poll(await reload(authorization), t0 + 6000), { kind: 'pending' });
    assert.deepEqual(await flow.poll(await reload(authorization), t0 + 11_999), { kind: 'slow_down', intervalSeconds: 11 });
  });

  test('expiry comes before pending and before slow_down', async () => {
    const t0 = Date.now();
    const { authorization } = await start(new Date(t0));
    await flow.poll(await reload(authorization), t0);
    assert.deepEqual(await flow.poll(await reload(authorization), t0 + 600_000), { kind: 'expired' });
  });

  test('a decision is taken once, and only before expiry', async () => {
    const { authorization } = await start();
    assert.equal((await flow.decide(authorization, 'allow', 'u1')).kind, 'decided');
    assert.equal((await flow.decide(authorization, 'deny', 'u2')).kind, 'already_decided');
    const late = await start(new Date(Date.now() - 700_000));
    assert.equal((await flow.decide(late.authorization, 'allow', 'u1')).kind, 'expired');
  });

  test('lookup by user code: pending, expired, decided, unknown', async () => {
    const pending = await start();
    assert.equal((await flow.findByUserCode(pending.userCode.toLowerCase())).kind, 'pending');
    const expired = await start(new Date(Date.now() - 700_000));
    assert.equal((await flow.findByUserCode(expired.userCode)).kind, 'expired');
    await flow.decide(pending.authorization, 'deny', 'u1');
    assert.equal((await flow.findByUserCode(pending.userCode)).kind, 'decided');
    assert.equal((await flow.findByUserCode('ZZZZ-ZZZZ-ZZZZ')).kind, 'unknown');
    assert.equal((await flow.findByUserCode('x'.repeat(200))).kind, 'unknown');
    assert.equal((await flow.findByUserCode(' - ')).kind, 'unknown');
  });

  test('an approved code is exchanged exactly once', async () => {
    const t0 = Date.now();
    const { authorization } = await start(new Date(t0));
    await flow.decide(authorization, 'allow', 'u1');
    const first = await flow.poll(await reload(authorization), t0 + 1);
    assert.equal(first.kind, 'approved');
    const racing = await Promise.all([flow.exchange(authorization), flow.exchange(authorization), flow.exchange(authorization)]);
    assert.equal(racing.filter((a) => a !== null).length, 1);
    const second = await flow.poll(await reload(authorization), t0 + 10_000);
    assert.equal(second.kind, 'invalid');
  });
});
