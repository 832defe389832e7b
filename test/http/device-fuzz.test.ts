/**
 * Fuzzing the two endpoints people and devices type into: random forms, bodies, content types,
 * Authorization and Accept headers and query strings against POST /application/o/device/ and
 * POST /device. Whatever arrives, the answer is never 5xx, and an error is never a token.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { seedClient, seedProvider, seedUser, type SeededUser } from '../helpers/seed.js';
import { startDevice, userBasic } from '../helpers/device.js';

let server: TestServer;
let publicClient: string;
let confidential: { clientId: string; clientSecret: string };
let user: SeededUser;
let liveUserCode: string;
let session: { cookie: string; csrf: string };

before(async () => {
  server = await startTestServer();
  const provider = await seedProvider(server);
  publicClient = (await seedClient(server, { providerId: provider.id, allowedScopes: ['openid', 'profile'] })).clientId;
  const c = await seedClient(server, { providerId: provider.id, type: 'CONFIDENTIAL' });
  confidential = { clientId: c.clientId, clientSecret: c.clientSecret! };
  user = await seedUser(server);
  liveUserCode = (await startDevice(server, publicClient)).user_code;
  // A signed-in page session, so random forms also reach the signed-in actions.
  const first = await fetch(`${server.url}/device`);
  const cookie = first.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  const csrf = /name="csrf" value="([^"]+)"/.exec(await first.text())![1]!;
  const signedIn = await fetch(`${server.url}/device`, {
    method: 'POST', redirect: 'manual',
    headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrf, action: 'signin', username: user.username, password: user.password }).toString(),
  });
  const cookie2 = signedIn.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  const page = await fetch(`${server.url}/device`, { headers: { cookie: cookie2 } });
  session = { cookie: cookie2, csrf: /name="csrf" value="([^"]+)"/.exec(await page.text())![1]! };
});
after(async () => {
  await server.stop();
});

const printable = fc.string({ unit: fc.constantFrom(...' !"#$%&\'()*+,-./0123456789:;<=>?@ABCXYZ[\\]^_`abcxyz{|}~'), maxLength: 40 });
const anyText = fc.oneof(printable, fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 20 }));

const NAMES = ['client_id', 'client_secret', 'scope', 'scopes', 'code_challenge', 'code_challenge_method', 'user_code', 'decision', 'action', 'csrf', 'username', 'password', 'client_id[$ne]', '__proto__', 'constructor'];

function valuesFor(): fc.Arbitrary<string> {
  return fc.oneof(
    anyText,
    fc.constantFrom('openid profile', 'allow', 'deny', 'signin', 'enter', 'decide', 'signout', 'S256', 'plain', 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'),
    // Seeded values are read when a run draws them (the arbitraries are built before seeding).
    fc.constantFrom(0, 1, 2, 3, 4).map((i) => [publicClient, confidential.clientId, confidential.clientSecret, liveUserCode, session.csrf][i]!),
  );
}

/** A body: a well-formed form of known and odd names, or raw text that may not be a form at all. */
const body = fc.oneof(
  fc.dictionary(fc.oneof(fc.constantFrom(...NAMES), printable), valuesFor(), { maxKeys: 6 }).map((form) => new URLSearchParams(form).toString()),
  anyText,
  fc.constantFrom('%', '%zz', '%C3%28', 'a=1&a=2', '=', '&&&', 'client_id', `client_id=${'x'.repeat(70_000)}`),
);

const contentType = fc.option(fc.oneof(
  fc.constantFrom('application/x-www-form-urlencoded', 'application/x-www-form-urlencoded; charset=utf-8', 'application/x-www-form-urlencoded; charset=latin1', 'application/json', 'text/plain', 'multipart/form-data; boundary=x', ''),
  printable,
), { nil: undefined });

const authorization = fc.option(fc.oneof(
  fc.constant('').map(() => `Basic ${Buffer.from(`${publicClient}:`).toString('base64')}`),
  fc.constant('').map(() => `Basic ${Buffer.from(`${confidential.clientId}:${confidential.clientSecret}`).toString('base64')}`),
  fc.constant('').map(() => userBasic(user.username, user.appPassword)),
  anyText.map((t) => `Basic ${Buffer.from(t).toString('base64')}`),
  printable.map((t) => `Basic ${t}`),
  printable.map((t) => `Bearer ${t}`),
  printable,
), { nil: undefined });

const accept = fc.option(fc.oneof(fc.constantFrom('application/json', 'text/html', '*/*', 'application/json;q=0.1, text/html', 'application/*'), printable), { nil: undefined });
const query = fc.oneof(fc.constant(''), printable.map((q) => `?${q}`), fc.constantFrom('?code_challenge=x&code_challenge=y', '?code=%', '?code_challenge_method=S256'));
const withSession = fc.boolean();

/** Header values fetch can carry: no control characters, latin-1 only. */
const headerSafe = (value: string) => /^[\x20-\x7e]*$/.test(value);

async function send(path: string, input: { body: string; contentType?: string; authorization?: string; accept?: string; query: string; withSession: boolean }) {
  const headers: Record<string, string> = {};
  if (input.contentType !== undefined && headerSafe(input.contentType)) headers['content-type'] = input.contentType;
  if (input.authorization !== undefined && headerSafe(input.authorization)) headers.authorization = input.authorization;
  if (input.accept !== undefined && headerSafe(input.accept)) headers.accept = input.accept;
  if (input.withSession) headers.cookie = session.cookie;
  let url: string;
  try {
    url = new URL(`${server.url}${path}${input.query}`).toString();
  } catch {
    url = `${server.url}${path}`;
  }
  const response = await fetch(url, { method: 'POST', headers, body: input.body, redirect: 'manual' });
  const text = await response.text();
  return { status: response.status, text };
}

const request = fc.record({ body, contentType, authorization, accept, query, withSession });

describe('fuzzing', () => {
  test('POST /application/o/device/ never answers 5xx, and only a 200 carries codes', async () => {
    await fc.assert(fc.asyncProperty(request, async (input) => {
      const { status, text } = await send('/application/o/device/', input);
      assert.ok(status < 500, `status ${status} for ${JSON.stringify(input).slice(0, 300)}: ${text.slice(0, 200)}`);
      if (status !== 200) assert.ok(!text.includes('device_code'), text);
    }), { numRuns: 200 });
  });

  test('POST /device never answers 5xx, in either of its forms', async () => {
    await fc.assert(fc.asyncProperty(request, async (input) => {
      const { status, text } = await send('/device', input);
      assert.ok(status < 500, `status ${status} for ${JSON.stringify(input).slice(0, 300)}: ${text.slice(0, 200)}`);
    }), { numRuns: 200 });
  });

  test('GET /device with random query strings never answers 5xx', async () => {
    await fc.assert(fc.asyncProperty(fc.oneof(printable, anyText), fc.boolean(), async (q, signedIn) => {
      const response = await fetch(`${server.url}/device?code=${encodeURIComponent(q)}&user_code=${encodeURIComponent(q)}`, { headers: signedIn ? { cookie: session.cookie } : {} });
      await response.text();
      assert.ok(response.status < 500, `status ${response.status} for ${JSON.stringify(q)}`);
    }), { numRuns: 100 });
  });
});
