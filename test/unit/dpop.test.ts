/**
 * The DPoP verifier's rules that need a clock or no server: nonces rotating by window (the
 * current and the previous accepted, older refused, the same in every process with the same
 * secret), and §4.3's htu comparison. It runs on a real embedded store (its replay record).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, mock, test } from 'node:test';
import { DpopVerifier, sameHtu } from '../../src/domain/dpop.js';
import { openEmbeddedStore } from '../../src/store/sqlite/sqlite-store.js';
import { withRepositories, type Store } from '../../src/store/index.js';
import { makeProof, proofKey } from '../helpers/dpop.js';

let dir: string;
let store: Store;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-dpop-'));
  store = withRepositories(await openEmbeddedStore(dir));
});
after(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const htu = 'https://id.example.com/application/o/token/';

describe('server nonces (RFC 9449 §8)', () => {
  test('the same in two processes with the same secret, another with another secret', () => {
    const now = Date.now();
    assert.equal(new DpopVerifier(store, 's1').currentNonce(now), new DpopVerifier(store, 's1').currentNonce(now));
    assert.notEqual(new DpopVerifier(store, 's1').currentNonce(now), new DpopVerifier(store, 's2').currentNonce(now));
  });

  test("rotate every 5 minutes: this window's and the previous one's are accepted, an older one is use_dpop_nonce", async (t) => {
    const verifier = new DpopVerifier(store, 'secret');
    const key = await proofKey();
    const start = Math.floor(Date.now() / 300_000) * 300_000 + 1_000;
    const old = verifier.currentNonce(start);
    t.mock.timers.enable({ apis: ['Date'], now: start + 300_000 });
    const previous = verifier.currentNonce(start);
    assert.notEqual(verifier.currentNonce(Date.now()), previous, 'a new window, a new nonce');
    await verifier.verify(await makeProof(key, { htu, nonce: previous }), { method: 'POST', url: htu, nonceRequired: true });
    t.mock.timers.setTime(start + 600_000);
    await assert.rejects(
      verifier.verify(await makeProof(key, { htu, nonce: old }), { method: 'POST', url: htu, nonceRequired: true }),
      (error: { code?: string; nonce?: string }) => error.code === 'use_dpop_nonce' && error.nonce === verifier.currentNonce(Date.now()),
    );
    mock.timers.reset();
  });
});

describe('htu (RFC 9449 §4.3 point 9)', () => {
  test('scheme and host case-insensitive, default port, query and fragment ignored', () => {
    assert.ok(sameHtu('HTTPS://ID.Example.COM/application/o/token/', htu));
    assert.ok(sameHtu('https://id.example.com:443/application/o/token/?x=1#y', htu));
  });

  test('another scheme, host, port, path, a user part or no URL at all do not match', () => {
    for (const other of ['http://id.example.com/application/o/token/', 'https://id.example.org/application/o/token/',
      'https://id.example.com:8443/application/o/token/', 'https://id.example.com/application/o/token', 'https://id.example.com/application/o/Token/',
      'https://user@id.example.com/application/o/token/', 'token', '']) {
      assert.equal(sameHtu(other, htu), false, other);
    }
  });
});
