/**
 * Password guessing on /device is bounded per username (the page and its JSON form share the
 * count, and so do all spellings of the username), per address, and by the number of password
 * checks running at once; attempts are counted before they are checked.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { basic, startTestServer, type TestServer } from '../helpers/server.js';
import { seedUser } from '../helpers/seed.js';
import { requestFrom } from '../helpers/address.js';
import { FAILED_SIGN_INS_PER_WINDOW } from '../../src/domain/rate-limits.js';

let server: TestServer;
before(async () => {
  // These tests fail hundreds of sign-ins from one address; the per-address limit has its own server below.
  server = await startTestServer({ TESSERA_SIGNIN_PER_ADDRESS: '100000' });
});
after(() => server.stop());

function jsonForm(authorization: string) {
  return fetch(`${server.url}/device`, {
    method: 'POST',
    headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded', authorization },
    body: new URLSearchParams({ user_code: 'BCDFGHJK', decision: 'allow' }).toString(),
  });
}

test(`after ${FAILED_SIGN_INS_PER_WINDOW} failed sign-ins a username is refused with 429 slow_down, even with the right password`, async () => {
  const victim = await seedUser(server);
  const bystander = await seedUser(server);
  for (let i = 0; i < FAILED_SIGN_INS_PER_WINDOW; i += 1) {
    const res = await jsonForm(basic(victim.username, `wrong-${i}`));
    assert.equal(res.status, 401, `attempt ${i + 1} is an ordinary wrong password`);
    assert.deepEqual(await res.json(), { error: 'invalid_credentials' });
  }
  const limited = await jsonForm(basic(victim.username, victim.password));
  assert.equal(limited.status, 429);
  assert.deepEqual(await limited.json(), { error: 'slow_down' });
  assert.ok(Number(limited.headers.get('retry-after')) > 0);

  // Another username from the same address is not locked out.
  const other = await jsonForm(basic(bystander.username, bystander.password));
  assert.equal(other.status, 400, 'the bystander signs in (and is told the code is unknown)');
  assert.deepEqual(await other.json(), { error: 'invalid_user_code' });
});

test('the sign-in page shares the count: a locked username gets a 429 page', async () => {
  const victim = await seedUser(server);
  for (let i = 0; i < FAILED_SIGN_INS_PER_WINDOW; i += 1) await jsonForm(basic(victim.username, `wrong-${i}`));
  const page = await fetch(`${server.url}/device`);
  const cookie = page.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  const csrf = /name="csrf" value="([^"]+)"/.exec(await page.text())![1]!;
  const res = await fetch(`${server.url}/device`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
    body: new URLSearchParams({ action: 'signin', csrf, username: victim.username, password: victim.password }).toString(),
  });
  assert.equal(res.status, 429);
  assert.match(await res.text(), /Too many failed sign-ins/);
});

/** HTTP Basic exactly as given, without URL-encoding (so `%61lice` goes over the wire as is). */
function rawBasic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}

test('every spelling of a username shares its count: `%61lice` (URL-decoded to alice) does not get 30 attempts of its own', async () => {
  const victim = await seedUser(server);
  const encoded = `%${victim.username.charCodeAt(0).toString(16)}${victim.username.slice(1)}`;
  for (let i = 0; i < FAILED_SIGN_INS_PER_WINDOW; i += 1) {
    const spelling = i % 2 === 0 ? victim.username : encoded;
    assert.equal((await jsonForm(rawBasic(spelling, `wrong-${i}`))).status, 401, `attempt ${i + 1}`);
  }
  for (const spelling of [encoded, victim.username]) {
    const limited = await jsonForm(rawBasic(spelling, victim.password));
    assert.equal(limited.status, 429, `${spelling} with the right password is refused once the user's count is used up`);
    assert.deepEqual(await limited.json(), { error: 'slow_down' });
  }
});

test(`${2 * FAILED_SIGN_INS_PER_WINDOW} wrong passwords in parallel: at most ${FAILED_SIGN_INS_PER_WINDOW} are checked, the rest are 429 (counted before they are checked)`, async () => {
  const victim = await seedUser(server);
  const answers = await Promise.all(Array.from({ length: 2 * FAILED_SIGN_INS_PER_WINDOW }, (_, i) => jsonForm(basic(victim.username, `wrong-${i}`))));
  const statuses = answers.map((a) => a.status);
  const checked = statuses.filter((s) => s === 401).length;
  assert.ok(checked <= FAILED_SIGN_INS_PER_WINDOW, `${checked} wrong passwords were checked`);
  assert.equal(checked + statuses.filter((s) => s === 429).length, statuses.length, 'every other answer is 429');
  await server.server.services.events.flush();
  const failures = await server.server.services.store.events.find({ action: 'LOGIN_FAILED', username: victim.username });
  assert.equal(failures.length, checked, 'one LOGIN_FAILED per password checked');
});

test('a real sign-in during 60 bogus ones (60 usernames, so no per-username limit applies) is answered within a second and a half', async () => {
  const real = await seedUser(server);
  const bogus = Array.from({ length: 60 }, (_, i) => jsonForm(basic(`nobody-${i}-${Date.now()}`, 'wrong password')));
  await new Promise((resolve) => setTimeout(resolve, 30));
  const started = performance.now();
  const answer = await jsonForm(basic(real.username, real.password));
  const elapsed = performance.now() - started;
  const bogusStatuses = (await Promise.all(bogus)).map((a) => a.status);
  // Signed in (then told the made-up code is unknown), or refused at once as busy, to retry.
  assert.ok(answer.status === 400 || answer.status === 429, `status ${answer.status}`);
  if (answer.status === 429) assert.equal(answer.headers.get('retry-after'), '1');
  assert.ok(elapsed < 1500, `the real sign-in took ${Math.round(elapsed)} ms`);
  assert.ok(bogusStatuses.includes(429), 'the overflow of bogus sign-ins was refused (429), not queued');
  // A refusal for being busy does not count against the user: the same sign-in now works.
  const again = await jsonForm(basic(real.username, real.password));
  assert.equal(again.status, 400);
  assert.deepEqual(await again.json(), { error: 'invalid_user_code' });
});

describe('failed sign-ins per address (TESSERA_SIGNIN_PER_ADDRESS)', () => {
  const PER_ADDRESS = 5;
  let limited: TestServer;
  before(async () => {
    limited = await startTestServer({ TESSERA_SIGNIN_PER_ADDRESS: String(PER_ADDRESS) });
  });
  after(() => limited.stop());

  const form = (authorization: string) => ({
    headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded', authorization },
    body: new URLSearchParams({ user_code: 'BCDFGHJK', decision: 'allow' }).toString(),
  });

  test(`after ${PER_ADDRESS} failed sign-ins from one address (each for another username), that address is refused with 429; another address is not`, async () => {
    const user = await seedUser(limited);
    for (let i = 0; i < PER_ADDRESS; i += 1) {
      const answer = await requestFrom('127.0.0.1', `${limited.url}/device`, form(basic(`guess-${i}`, 'wrong')));
      assert.equal(answer.status, 401, `attempt ${i + 1}`);
    }
    const refused = await requestFrom('127.0.0.1', `${limited.url}/device`, form(basic(user.username, user.password)));
    assert.equal(refused.status, 429);
    assert.deepEqual(refused.body, { error: 'slow_down' });
    assert.ok(Number(refused.headers['retry-after']) > 0);
    const elsewhere = await requestFrom('127.0.0.2', `${limited.url}/device`, form(basic(user.username, user.password)));
    assert.equal(elsewhere.status, 400, 'signed in from another address (and told the code is unknown)');
  });

  test('a successful sign-in does not count against the address', async () => {
    const user = await seedUser(limited);
    for (let i = 0; i < PER_ADDRESS + 2; i += 1) {
      const answer = await requestFrom('127.0.0.3', `${limited.url}/device`, form(basic(user.username, user.password)));
      assert.equal(answer.status, 400, `sign-in ${i + 1}`);
    }
  });
});
