/** Password guessing on /device is bounded per username (the page and its JSON form share the count). */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { basic, startTestServer, type TestServer } from '../helpers/server.js';
import { seedUser } from '../helpers/seed.js';
import { FAILED_SIGN_INS_PER_WINDOW } from '../../src/domain/rate-limits.js';

let server: TestServer;
before(async () => {
  server = await startTestServer();
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
