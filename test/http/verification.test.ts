/**
 * GET/POST /device (contract "Verification"): the JSON form for programs, with its exact bodies
 * and the RFC 8628 §5.1 rate limit, and the pages for people: session cookie, CSRF, sign in,
 * prefilled codes that are still shown for confirmation, clear messages, no open redirects.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { rm } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { basic, postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { seedClient, seedProvider, seedUser, type SeededProvider, type SeededUser } from '../helpers/seed.js';
import { decide, jwtPayload, poll, sleep, startDevice, userBasic } from '../helpers/device.js';

let server: TestServer;
let provider: SeededProvider;
let clientId: string;
let fastClientId: string;
let frank: SeededUser;

before(async () => {
  server = await startTestServer();
  provider = await seedProvider(server, { name: 'Home devices', deviceFlow: { pollIntervalSeconds: 1 } });
  clientId = (await seedClient(server, { providerId: provider.id, name: 'Kitchen <TV> & Co', allowedScopes: ['openid', 'profile', 'email'] })).clientId;
  const fast = await seedProvider(server, { deviceFlow: { pollIntervalSeconds: 1, codeLifetimeSeconds: 2 } });
  fastClientId = (await seedClient(server, { providerId: fast.id })).clientId;
  frank = await seedUser(server, { name: 'Frank' });
});
after(async () => {
  await server.stop();
});

describe('the JSON form of POST /device', () => {
  test('allow answers 200 with exactly status, client_id and scope', async () => {
    const codes = await startDevice(server, clientId, { scope: 'openid profile' });
    const { status, headers, body } = await decide(server, frank.username, frank.appPassword, codes.user_code, 'allow');
    assert.equal(status, 200);
    assert.deepEqual(body, { status: 'approved', client_id: clientId, scope: 'openid profile' });
    assert.equal(headers.get('cache-control'), 'no-store');
    assert.match(headers.get('content-type') ?? '', /^application\/json/);
  });

  test('deny answers 200 status denied', async () => {
    const codes = await startDevice(server, clientId);
    const { status, body } = await decide(server, frank.username, frank.appPassword, codes.user_code, 'deny');
    assert.equal(status, 200);
    assert.deepEqual(body, { status: 'denied', client_id: clientId, scope: '' });
  });

  test("the user's login password works as well as an app password", async () => {
    const codes = await startDevice(server, clientId);
    assert.equal((await decide(server, frank.username, frank.password, codes.user_code, 'allow')).status, 200);
  });

  test('URL-encoded Basic credentials are accepted too', async () => {
    const codes = await startDevice(server, clientId);
    const response = await fetch(`${server.url}/device`, {
      method: 'POST',
      headers: { accept: 'application/json', authorization: basic(frank.username, frank.password), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ user_code: codes.user_code, decision: 'allow' }).toString(),
    });
    assert.equal(response.status, 200);
  });

  test('wrong credentials: 401 invalid_credentials with WWW-Authenticate', async () => {
    const codes = await startDevice(server, clientId);
    const { status, headers, body } = await decide(server, frank.username, 'wrong-password', codes.user_code, 'allow');
    assert.equal(status, 401);
    assert.deepEqual(body, { error: 'invalid_credentials' });
    assert.match(headers.get('www-authenticate') ?? '', /^Basic realm="tessera"/);
  });

  test('no credentials: 401 invalid_credentials', async () => {
    const response = await fetch(`${server.url}/device`, {
      method: 'POST', headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' }, body: 'user_code=ABCD-EFGH&decision=allow',
    });
    assert.equal(response.status, 401);
    assert.deepEqual(await response.json(), { error: 'invalid_credentials' });
  });

  test('a missing user_code or decision, or another decision, is invalid_request', async () => {
    const codes = await startDevice(server, clientId);
    const auth = { accept: 'application/json', authorization: userBasic(frank.username, frank.appPassword), 'content-type': 'application/x-www-form-urlencoded' };
    for (const body of ['decision=allow', `user_code=${codes.user_code}`, `user_code=${codes.user_code}&decision=maybe`]) {
      const response = await fetch(`${server.url}/device`, { method: 'POST', headers: auth, body });
      assert.equal(response.status, 400, body);
      assert.deepEqual(await response.json(), { error: 'invalid_request' });
    }
  });

  test('an unknown code is invalid_user_code', async () => {
    const { status, body } = await decide(server, frank.username, frank.appPassword, 'BBBB-BBBB', 'allow');
    assert.equal(status, 400);
    assert.deepEqual(body, { error: 'invalid_user_code' });
  });

  test('an already decided code is invalid_user_code', async () => {
    const codes = await startDevice(server, clientId);
    assert.equal((await decide(server, frank.username, frank.appPassword, codes.user_code, 'allow')).status, 200);
    const again = await decide(server, frank.username, frank.appPassword, codes.user_code, 'deny');
    assert.equal(again.status, 400);
    assert.deepEqual(again.body, { error: 'invalid_user_code' });
  });

  test('an expired code is expired_user_code', async () => {
    const codes = await startDevice(server, fastClientId);
    await sleep(2100);
    const { status, body } = await decide(server, frank.username, frank.appPassword, codes.user_code, 'allow');
    assert.equal(status, 400);
    assert.deepEqual(body, { error: 'expired_user_code' });
  });

  test('on entry, case, spaces and dashes are ignored', async () => {
    const codes = await startDevice(server, clientId);
    const typed = ` ${codes.user_code.replace('-', '').toLowerCase().split('').join(' ')} `;
    assert.equal((await decide(server, frank.username, frank.appPassword, typed, 'allow')).status, 200);
  });

  test('the device gets its token once the JSON form approved it', async () => {
    const codes = await startDevice(server, clientId, { scope: 'openid' });
    await decide(server, frank.username, frank.appPassword, codes.user_code, 'allow');
    const token = await poll(server, clientId, codes.device_code);
    assert.equal(token.status, 200);
    assert.equal(typeof token.body.id_token, 'string');
  });

  test("only people approve devices: a service account's app password is 401 invalid_credentials (contract v2)", async () => {
    const codes = await startDevice(server, clientId, { scope: 'openid' });
    const account = await server.gql<{ createServiceAccount: { id: string; username: string } }>(
      'mutation($u: String!) { createServiceAccount(input: { username: $u }) { id username } }', { u: `svc-${Date.now().toString(36)}` },
    );
    const secret = (await server.gql<{ createAppPassword: { secret: string } }>(
      'mutation($id: ID!) { createAppPassword(input: { userId: $id }) { secret } }', { id: account.createServiceAccount.id },
    )).createAppPassword.secret;
    const answer = await decide(server, account.createServiceAccount.username, secret, codes.user_code, 'allow');
    assert.equal(answer.status, 401, JSON.stringify(answer.body));
    assert.deepEqual(answer.body, { error: 'invalid_credentials' });
    assert.equal((await poll(server, clientId, codes.device_code)).body.error, 'authorization_pending');
  });

  test('only people approve devices: a generated service account with an app password is refused too', async () => {
    const m2mClient = await seedClient(server, { providerId: provider.id, type: 'CONFIDENTIAL', grantTypes: ['CLIENT_CREDENTIALS'] });
    const issued = await postForm(`${server.url}/application/o/token/`, { grant_type: 'client_credentials' }, { authorization: basic(m2mClient.clientId, m2mClient.clientSecret!) });
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    const sub = String(jwtPayload(String(issued.body.access_token)).sub);
    const generated = (await server.server.services.users.get(sub))!;
    assert.equal(generated.type, 'GENERATED_SERVICE_ACCOUNT');
    const { secret } = await server.server.services.appPasswords.create({ userId: generated.id, description: 'test' });
    const codes = await startDevice(server, clientId, { scope: 'openid' });
    const answer = await decide(server, generated.username, secret, codes.user_code, 'allow');
    assert.equal(answer.status, 401, JSON.stringify(answer.body));
    assert.equal((await poll(server, clientId, codes.device_code)).body.error, 'authorization_pending');
  });
});

/** A POST from a chosen loopback address (127.0.0.x), to be another client address. */
function decideFrom(address: string, url: string, user: SeededUser, userCode: string): Promise<{ status: number; body: Record<string, unknown>; headers: http.IncomingHttpHeaders }> {
  const target = new URL(`${url}/device`);
  const payload = new URLSearchParams({ user_code: userCode, decision: 'allow' }).toString();
  return new Promise((resolve, reject) => {
    const request = http.request({
      host: target.hostname, port: target.port, path: target.pathname, method: 'POST', localAddress: address,
      headers: {
        accept: 'application/json', authorization: userBasic(user.username, user.appPassword),
        'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(payload),
      },
    }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown>, headers: response.headers }));
    });
    request.on('error', reject);
    request.end(payload);
  });
}

describe('brute-force protection (RFC 8628 §5.1)', () => {
  let limited: TestServer;
  let tvClient: string;

  before(async () => {
    limited = await startTestServer();
    const p = await seedProvider(limited);
    tvClient = (await seedClient(limited, { providerId: p.id })).clientId;
  });
  after(async () => {
    await limited.stop();
  });

  test('more than 20 wrong codes from one address within a minute: 429 slow_down, even for a right code', async () => {
    const user = await seedUser(limited);
    for (let i = 0; i < 20; i++) {
      const answer = await decideFrom('127.0.0.1', limited.url, user, `BBBB-BB${'BCDFGHJKLMNPQRSTVWXZ'[i]}B`);
      assert.equal(answer.status, 400, `attempt ${i + 1}`);
      assert.equal(answer.body.error, 'invalid_user_code');
    }
    const over = await decideFrom('127.0.0.1', limited.url, user, 'BBBB-CCCC');
    assert.equal(over.status, 429);
    assert.deepEqual(over.body, { error: 'slow_down' });
    assert.ok(Number(over.headers['retry-after']) > 0);
    const codes = await startDevice(limited, tvClient);
    const right = await decideFrom('127.0.0.1', limited.url, user, codes.user_code);
    assert.equal(right.status, 429, 'the limit holds for the rest of the minute');
    // Another address and another user are not affected.
    const other = await seedUser(limited);
    assert.equal((await decideFrom('127.0.0.9', limited.url, other, codes.user_code)).status, 200);
  });

  test('more than 20 wrong codes by one user across addresses: 429 slow_down', async () => {
    const user = await seedUser(limited);
    for (let i = 0; i < 20; i++) {
      const answer = await decideFrom(`127.0.0.${20 + (i % 2)}`, limited.url, user, `CCCC-CC${'BCDFGHJKLMNPQRSTVWXZ'[i]}C`);
      assert.equal(answer.status, 400, `attempt ${i + 1}`);
    }
    const over = await decideFrom('127.0.0.22', limited.url, user, 'CCCC-DDDD');
    assert.equal(over.status, 429);
    assert.deepEqual(over.body, { error: 'slow_down' });
  });

  test('40 wrong codes in parallel: at most 20 are looked up, the rest are 429 (each entry counts before the lookup)', async () => {
    const user = await seedUser(limited);
    const collection = limited.server.services.store.deviceAuthorizations;
    const find = collection.find.bind(collection);
    let lookups = 0;
    // Counts the store's user-code lookups (the real store still answers them).
    collection.find = (filter, options) => {
      if (filter && typeof filter === 'object' && 'userCode' in filter) lookups += 1;
      return find(filter, options);
    };
    try {
      const letters = 'BCDFGHJKLMNPQRSTVWXZ';
      const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => decideFrom('127.0.0.30', limited.url, user, `DDDD-${letters[i % 20]}${letters[Math.floor(i / 20)]}DD`)));
      const wrong = answers.filter((a) => a.status === 400).length;
      assert.ok(lookups <= 20, `${lookups} codes were looked up`);
      assert.ok(wrong <= 20, `${wrong} answered invalid_user_code`);
      assert.equal(answers.filter((a) => a.status === 429).length, 40 - wrong);
    } finally {
      collection.find = find;
    }
  });

  test('a right code does not count against the limit', async () => {
    const user = await seedUser(limited);
    for (let i = 0; i < 25; i++) {
      const codes = await startDevice(limited, tvClient);
      const answer = await decideFrom('127.0.0.31', limited.url, user, codes.user_code);
      assert.equal(answer.status, 200, `code ${i + 1}`);
    }
  });
});

/** A tiny cookie jar over fetch, as a browser without JavaScript would behave. */
class Browser {
  cookies = new Map<string, string>();
  constructor(readonly base: string) {}

  async request(path: string, init: { method?: string; form?: Record<string, string> } = {}) {
    const headers: Record<string, string> = { accept: 'text/html' };
    if (this.cookies.size > 0) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    if (init.form) headers['content-type'] = 'application/x-www-form-urlencoded';
    const response = await fetch(`${this.base}${path}`, {
      method: init.method ?? (init.form ? 'POST' : 'GET'), headers, redirect: 'manual',
      body: init.form ? new URLSearchParams(init.form).toString() : undefined,
    });
    for (const cookie of response.headers.getSetCookie()) {
      const [pair] = cookie.split(';');
      const eq = pair!.indexOf('=');
      this.cookies.set(pair!.slice(0, eq), pair!.slice(eq + 1));
    }
    return { status: response.status, headers: response.headers, html: await response.text() };
  }

  static csrf(html: string): string {
    const match = /name="csrf" value="([^"]+)"/.exec(html);
    assert.ok(match, 'the page has a CSRF token');
    return match[1]!;
  }

  /** Signs in through the page; returns the page it lands on. */
  async signIn(user: SeededUser, code?: string) {
    const start = await this.request(code ? `/device?code=${encodeURIComponent(code)}` : '/device');
    const form: Record<string, string> = { csrf: Browser.csrf(start.html), action: 'signin', username: user.username, password: user.password };
    if (code) form.user_code = code;
    const signedIn = await this.request('/device', { form });
    assert.equal(signedIn.status, 303);
    return this.request(signedIn.headers.get('location')!);
  }
}

describe('the verification pages', () => {
  test('GET /device shows the sign-in form and sets an HttpOnly, SameSite=Lax, signed session cookie', async () => {
    const browser = new Browser(server.url);
    const page = await browser.request('/device');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(page.html, /<form method="post" action="\/device">/);
    assert.match(page.html, /autocomplete="current-password"/);
    assert.match(page.html, /<meta name="viewport"/);
    assert.match(page.html, /<html lang="en">/);
    const cookies = page.headers.getSetCookie();
    const session = cookies.find((c) => c.startsWith('tessera_device='));
    assert.ok(session, cookies.join(' | '));
    assert.match(session, /httponly/i);
    assert.match(session, /samesite=lax/i);
    assert.doesNotMatch(session, /;\s*secure/i, 'not Secure over plain http');
    assert.ok(cookies.some((c) => c.startsWith('tessera_device.sig=')), 'signed');
    assert.equal(page.headers.get('cache-control'), 'no-store');
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    assert.match(page.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    assert.doesNotMatch(page.html, /<script/i, 'works without JavaScript: there is none');
  });

  test('the whole flow through the pages: sign in, confirm the prefilled code, allow, done; the device gets its token', async () => {
    const codes = await startDevice(server, clientId, { scope: 'openid profile' });
    const browser = new Browser(server.url);
    const consent = await browser.signIn(frank, codes.user_code);
    assert.equal(consent.status, 200);
    // RFC 8628 §3.3.1: the prefilled code is shown to compare with the device.
    assert.ok(consent.html.includes(codes.user_code), 'the code is shown for confirmation');
    assert.ok(consent.html.includes('Kitchen &lt;TV&gt; &amp; Co'), 'the client name, escaped');
    assert.ok(!consent.html.includes('Kitchen <TV>'), 'never unescaped');
    assert.match(consent.html, /openid/);
    assert.match(consent.html, /Your name and username/);
    assert.match(consent.html, /value="allow"/);
    assert.match(consent.html, /value="deny"/);
    // Showing the page decided nothing.
    assert.equal((await poll(server, clientId, codes.device_code)).body.error, 'authorization_pending');

    const done = await browser.request('/device', {
      form: { csrf: Browser.csrf(consent.html), action: 'decide', user_code: codes.user_code.replace('-', ''), decision: 'allow' },
    });
    assert.equal(done.status, 200);
    assert.match(done.html, /Your device is connected/);
    await sleep(1100); // the code's poll interval since the pending poll above
    const token = await poll(server, clientId, codes.device_code);
    assert.equal(token.status, 200, JSON.stringify(token.body));
  });

  test('?user_code= prefills like ?code=', async () => {
    const codes = await startDevice(server, clientId);
    const browser = new Browser(server.url);
    await browser.signIn(frank);
    const consent = await browser.request(`/device?user_code=${codes.user_code}`);
    assert.equal(consent.status, 200);
    assert.ok(consent.html.includes(codes.user_code));
    assert.match(consent.html, /value="decide"/);
  });

  test('signed out, a prefilled code is carried through the sign-in form', async () => {
    const codes = await startDevice(server, clientId);
    const page = await new Browser(server.url).request(`/device?code=${codes.user_code}`);
    assert.match(page.html, new RegExp(`name="user_code" value="${codes.user_code}"`));
    assert.match(page.html, /Sign in/);
  });

  test('entering the code by hand shows the consent page; deny leads to a clear done page and access_denied', async () => {
    const codes = await startDevice(server, clientId);
    const browser = new Browser(server.url);
    const enter = await browser.signIn(frank);
    assert.match(enter.html, /Enter the code shown on your device/);
    const consent = await browser.request('/device', { form: { csrf: Browser.csrf(enter.html), action: 'enter', user_code: codes.user_code.toLowerCase() } });
    assert.equal(consent.status, 200);
    assert.match(consent.html, /value="deny"/);
    const done = await browser.request('/device', { form: { csrf: Browser.csrf(consent.html), action: 'decide', user_code: codes.user_code, decision: 'deny' } });
    assert.match(done.html, /Request denied/);
    assert.equal((await poll(server, clientId, codes.device_code)).body.error, 'access_denied');
  });

  test('a custom lower-case alphabet: the page shows the code as the device does; typed upper-case, it still matches', async () => {
    const custom = await seedProvider(server, { deviceFlow: { userCodeCharset: 'CUSTOM', userCodeAlphabet: 'bcdfghjkmnpqrstvwxz', userCodeLength: 8 } });
    const customClient = (await seedClient(server, { providerId: custom.id })).clientId;
    const codes = await startDevice(server, customClient);
    assert.match(codes.user_code, /^[bcdfghjkmnpqrstvwxz]{4}-[bcdfghjkmnpqrstvwxz]{4}$/);
    const browser = new Browser(server.url);
    await browser.signIn(frank);
    const consent = await browser.request(`/device?code=${codes.user_code.toUpperCase()}`);
    assert.equal(consent.status, 200);
    assert.ok(consent.html.includes(`>${codes.user_code}</strong>`), 'shown in the case the device shows');
  });

  test('an unknown code gets a clear message', async () => {
    const browser = new Browser(server.url);
    await browser.signIn(frank);
    const page = await browser.request('/device?code=ZZZZ-ZZZZ');
    assert.equal(page.status, 400);
    assert.match(page.html, /role="alert"[^>]*>We don&#39;t recognise that code/);
    assert.match(page.html, /aria-invalid="true"/, 'the field is marked invalid for screen readers');
  });

  test('an expired code is refused on the page too, with a clear message', async () => {
    const codes = await startDevice(server, fastClientId);
    const browser = new Browser(server.url);
    await browser.signIn(frank);
    await sleep(2100);
    const page = await browser.request(`/device?code=${codes.user_code}`);
    assert.equal(page.status, 400);
    assert.match(page.html, /That code has expired/);
    assert.doesNotMatch(page.html, /value="allow"/);
  });

  test('a used code gets a clear message', async () => {
    const codes = await startDevice(server, clientId);
    await decide(server, frank.username, frank.appPassword, codes.user_code, 'allow');
    const browser = new Browser(server.url);
    await browser.signIn(frank);
    const page = await browser.request(`/device?code=${codes.user_code}`);
    assert.match(page.html, /already been used/);
  });

  test('a wrong password shows the sign-in form again with a message', async () => {
    const browser = new Browser(server.url);
    const start = await browser.request('/device');
    const page = await browser.request('/device', { form: { csrf: Browser.csrf(start.html), action: 'signin', username: frank.username, password: 'nope-nope' } });
    assert.equal(page.status, 400);
    assert.match(page.html, /Wrong username or password/);
    assert.ok(page.html.includes(`value="${frank.username}"`), 'the username is kept');
  });

  test('signing in on the page records LOGIN, a wrong password LOGIN_FAILED, under their request ids', async () => {
    const browser = new Browser(server.url);
    const start = await browser.request('/device');
    const failed = await browser.request('/device', { form: { csrf: Browser.csrf(start.html), action: 'signin', username: frank.username, password: 'nope-nope' } });
    const ok = await browser.request('/device', { form: { csrf: Browser.csrf(failed.html), action: 'signin', username: frank.username, password: frank.password } });
    await server.server.services.events.flush();
    const events = server.server.services.store.events;
    const failedEvent = await events.findOne({ requestId: failed.headers.get('x-request-id')! });
    assert.equal(failedEvent?.action, 'LOGIN_FAILED');
    assert.equal(failedEvent?.username, frank.username);
    assert.equal((await events.findOne({ requestId: ok.headers.get('x-request-id')! }))?.action, 'LOGIN');
    assert.ok(!JSON.stringify(failedEvent).includes('nope-nope'), 'never the password');
  });

  test('a form without the CSRF token changes nothing (403)', async () => {
    const browser = new Browser(server.url);
    await browser.request('/device');
    const page = await browser.request('/device', { form: { action: 'signin', username: frank.username, password: frank.password } });
    assert.equal(page.status, 403);
    assert.match(page.html, /This form has expired/);
    // Still signed out.
    assert.match((await browser.request('/device')).html, /autocomplete="current-password"/);
  });

  test("a CSRF token from another session is refused: a decision cannot be forged", async () => {
    const codes = await startDevice(server, clientId);
    const victim = new Browser(server.url);
    await victim.signIn(frank);
    const attacker = new Browser(server.url);
    const attackerToken = Browser.csrf((await attacker.request('/device')).html);
    const forged = await victim.request('/device', { form: { csrf: attackerToken, action: 'decide', user_code: codes.user_code, decision: 'allow' } });
    assert.equal(forged.status, 403);
    assert.equal((await poll(server, clientId, codes.device_code)).body.error, 'authorization_pending');
  });

  test('a tampered session cookie is not trusted', async () => {
    const browser = new Browser(server.url);
    await browser.signIn(frank);
    const value = browser.cookies.get('tessera_device')!;
    const session = JSON.parse(Buffer.from(value, 'base64url').toString()) as { userId: string };
    session.userId = 'someone-else';
    browser.cookies.set('tessera_device', Buffer.from(JSON.stringify(session)).toString('base64url'));
    const page = await browser.request('/device');
    assert.match(page.html, /autocomplete="current-password"/, 'back to sign-in');
  });

  test('no open redirect: after sign-in the only place to go is /device on this origin', async () => {
    const browser = new Browser(server.url);
    const start = await browser.request('/device?code=%2F%2Fevil.example%2F');
    const signedIn = await browser.request('/device', {
      form: { csrf: Browser.csrf(start.html), action: 'signin', username: frank.username, password: frank.password, user_code: '//evil.example/', next: 'https://evil.example/', redirect_uri: 'https://evil.example/' },
    });
    assert.equal(signedIn.status, 303);
    const location = signedIn.headers.get('location')!;
    assert.ok(location.startsWith('/device?code='), location);
    assert.equal(new URL(location, 'http://tessera.test').host, 'tessera.test');
  });

  test('sign out ends the session', async () => {
    const browser = new Browser(server.url);
    const page = await browser.signIn(frank);
    assert.match(page.html, /Signed in as/);
    const out = await browser.request('/device', { form: { csrf: Browser.csrf(page.html), action: 'signout' } });
    assert.equal(out.status, 303);
    assert.match((await browser.request('/device')).html, /autocomplete="current-password"/);
  });

  test('sign-out ends the session server-side: the old cookie replayed afterwards is signed out and decides nothing', async () => {
    const codes = await startDevice(server, clientId);
    const browser = new Browser(server.url);
    const consent = await browser.signIn(frank, codes.user_code);
    assert.match(consent.html, /value="allow"/);
    const stolen = new Map(browser.cookies);
    const out = await browser.request('/device', { form: { csrf: Browser.csrf(consent.html), action: 'signout' } });
    assert.equal(out.status, 303);
    const replay = new Browser(server.url);
    replay.cookies = new Map(stolen);
    assert.match((await replay.request('/device')).html, /autocomplete="current-password"/, 'back to sign-in');
    replay.cookies = new Map(stolen);
    const forged = await replay.request('/device', { form: { csrf: Browser.csrf(consent.html), action: 'decide', user_code: codes.user_code, decision: 'allow' } });
    assert.notEqual(forged.status, 200);
    assert.doesNotMatch(forged.html, /Your device is connected/);
    assert.equal((await poll(server, clientId, codes.device_code)).body.error, 'authorization_pending');
  });

  test('the session cookie holds no user id, only an opaque secret', async () => {
    const browser = new Browser(server.url);
    await browser.signIn(frank);
    const content = Buffer.from(browser.cookies.get('tessera_device')!, 'base64url').toString();
    assert.ok(!content.includes(frank.user.id), content);
    assert.deepEqual(Object.keys(JSON.parse(content) as object), ['session']);
  });

  test("a password change ends the user's sessions", async () => {
    const user = await seedUser(server);
    const browser = new Browser(server.url);
    const other = new Browser(server.url);
    assert.match((await browser.signIn(user)).html, /Signed in as/);
    assert.match((await other.signIn(user)).html, /Signed in as/);
    await server.gql('mutation($id: ID!, $p: String!) { setUserPassword(id: $id, password: $p) }', { id: user.user.id, p: 'a brand new password' });
    for (const session of [browser, other]) {
      assert.match((await session.request('/device')).html, /autocomplete="current-password"/, 'signed out');
    }
    assert.match((await browser.signIn({ ...user, password: 'a brand new password' })).html, /Signed in as/);
  });

  test('a signed-in session survives a restart, also one that sets the same TESSERA_BOOTSTRAP_PASSWORD again', async () => {
    const env = { TESSERA_BOOTSTRAP_PASSWORD: 'bootstrap password 1' };
    const first = await startTestServer(env);
    const dataDir = first.dataDir;
    let cookies: Map<string, string>;
    try {
      const browser = new Browser(first.url);
      const admin = { username: 'admin', password: 'bootstrap password 1' } as SeededUser;
      assert.match((await browser.signIn(admin)).html, /Signed in as/);
      cookies = new Map(browser.cookies);
      await first.server.stop();
      const again = await startTestServer(env, dataDir);
      try {
        const replay = new Browser(again.url);
        replay.cookies = cookies;
        assert.match((await replay.request('/device')).html, /Signed in as/);
      } finally {
        await again.stop();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test('only people approve devices: a service account with a login password cannot sign in on the page', async () => {
    const account = await server.gql<{ createServiceAccount: { id: string; username: string } }>(
      'mutation($u: String!) { createServiceAccount(input: { username: $u }) { id username } }', { u: `svc-page-${Date.now().toString(36)}` },
    );
    await server.server.services.users.setPassword(account.createServiceAccount.id, 'service password 1');
    const browser = new Browser(server.url);
    const start = await browser.request('/device');
    const signIn = await browser.request('/device', {
      form: { csrf: Browser.csrf(start.html), action: 'signin', username: account.createServiceAccount.username, password: 'service password 1' },
    });
    assert.equal(signIn.status, 400);
    assert.match(signIn.html, /Wrong username or password/);
    assert.match((await browser.request('/device')).html, /autocomplete="current-password"/);
  });

  test('too many wrong codes on the page: 429 with a clear message', async () => {
    const own = await startTestServer();
    try {
      const user = await seedUser(own);
      const browser = new Browser(own.url);
      let page = await browser.signIn(user);
      for (let i = 0; i < 21; i++) {
        page = await browser.request('/device', { form: { csrf: Browser.csrf(page.html), action: 'enter', user_code: `DDDD-DD${'BCDFGHJKLMNPQRSTVWXZ'[i % 20]}${i < 20 ? 'D' : 'F'}` } });
      }
      assert.equal(page.status, 429);
      assert.match(page.html, /Too many wrong codes. Wait a minute/);
    } finally {
      await own.stop();
    }
  });
});

describe('the session cookie behind https', () => {
  test('is Secure, with the __Host- prefix, when TESSERA_PUBLIC_URL is https', async () => {
    const secure = await startTestServer({ TESSERA_PUBLIC_URL: 'https://id.example.com' });
    try {
      const page = await fetch(`${secure.url}/device`);
      const cookies = page.headers.getSetCookie();
      const session = cookies.find((c) => c.startsWith('__Host-tessera_device='));
      assert.ok(session, cookies.join(' | '));
      assert.match(session, /;\s*secure/i);
      assert.match(session, /httponly/i);
      assert.match(session, /samesite=lax/i);
      assert.match(session, /path=\//);
    } finally {
      await secure.stop();
    }
  });
});
