/**
 * The HTTP foundation (issue 2): health, readiness, metrics, request ids, JSON errors, and the
 * form-only guard of the OAuth endpoints. A real server over HTTP.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { freePort, rawExchange, startTestServer, type RawAnswer, type TestServer } from '../helpers/server.js';
import { parseFormEncoded } from '../../src/http/body.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/http/logger.js';
import { startServer } from '../../src/server.js';
import { GRANTS } from '../../src/oauth/grants/index.js';

let server: TestServer;
let url: string;
const TOKEN_ENDPOINT = '/application/o/token/';

before(async () => {
  server = await startTestServer();
  url = server.url;
});
after(async () => {
  await server.stop();
});

/** Sends bytes as they are (fetch would refuse or normalise them) and returns the raw response. */
function rawRequest(bytes: string | Buffer): Promise<RawAnswer> {
  return rawExchange(url, (socket) => {
    socket.end(bytes);
  });
}

function postRaw(path: string, body: string | Uint8Array, contentType = 'application/x-www-form-urlencoded'): Promise<Response> {
  return fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': contentType }, body });
}

describe('health and readiness', () => {
  test('/healthz answers 200', async () => {
    const response = await fetch(`${url}/healthz`);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { status: 'ok' });
  });

  test('/readyz answers 200 and names the store', async () => {
    const response = await fetch(`${url}/readyz`);
    assert.equal(response.status, 200);
    const body = (await response.json()) as { status: string; store: string };
    assert.equal(body.status, 'ready');
    assert.equal(body.store, 'embedded');
  });
});

describe('metrics', () => {
  test('/metrics is Prometheus text with request counts labelled by route pattern, not by path', async () => {
    await fetch(`${url}/application/o/first-unknown/jwks/`);
    await fetch(`${url}/application/o/second-unknown/jwks/`);
    await fetch(`${url}/healthz`);
    await fetch(`${url}/no/such/route/${Date.now()}`);
    const response = await fetch(`${url}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    assert.match(text, /# TYPE tessera_http_requests_total counter/);
    assert.match(text, /tessera_http_requests_total\{route="\/application\/o\/:slug\/jwks",method="GET",status="404"\} 2/);
    assert.match(text, /tessera_http_requests_total\{route="\/healthz",method="GET",status="200"\} [1-9]/);
    assert.match(text, /tessera_http_requests_total\{route="unmatched",method="GET",status="404"\} [1-9]/);
    assert.match(text, /# TYPE tessera_http_request_duration_seconds histogram/);
    assert.ok(!text.includes('first-unknown') && !text.includes('/no/such/route'), 'raw paths never become labels');
  });

  test('a known path with another method (405) is labelled unmatched, not by its raw path', async () => {
    const response = await fetch(`${url}/application/o/raw-path-slug/jwks/`, { method: 'POST' });
    assert.equal(response.status, 405);
    const text = await (await fetch(`${url}/metrics`)).text();
    assert.ok(!text.includes('raw-path-slug'));
    assert.match(text, /tessera_http_requests_total\{route="unmatched",method="POST",status="405"\} [1-9]/);
  });
});

describe('request ids', () => {
  test('every response carries X-Request-Id: 200, 404, 401, 405 and 413 alike', async () => {
    const responses = [
      await fetch(`${url}/healthz`),
      await fetch(`${url}/nothing-here`),
      await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{providers{id}}"}' }),
      await fetch(`${url}/healthz`, { method: 'DELETE' }),
      await postRaw(TOKEN_ENDPOINT, 'a='.padEnd(70 * 1024, 'x')),
    ];
    assert.deepEqual(responses.map((r) => r.status), [200, 404, 401, 405, 413]);
    for (const response of responses) {
      assert.match(response.headers.get('x-request-id') ?? '', /^[A-Za-z0-9._:-]{8,128}$/);
    }
    const ids = new Set(responses.map((r) => r.headers.get('x-request-id')));
    assert.equal(ids.size, responses.length, 'a fresh id per request');
  });

  test("a client's X-Request-Id never becomes the request's id (contract, version 2: request ids are the server's own)", async () => {
    const id = 'trace-1234.abcd:EF_gh';
    const response = await fetch(`${url}/nothing-here`, { headers: { 'x-request-id': id } });
    const own = response.headers.get('x-request-id') ?? '';
    assert.notEqual(own, id);
    assert.match(own, /^[A-Za-z0-9]{32}$/);
    assert.equal(((await response.json()) as { request_id: string }).request_id, own);
  });

  for (const [name, insane] of [
    ['too long', 'a'.repeat(129)],
    ['with spaces', 'abc def ghi jkl'],
    ['with a tab', 'abcdefgh\tijklmnop'],
    ['too short', 'abc'],
    ['with header-injection characters', 'abcdefgh%0d%0aSet-Cookie:x'],
  ] as const) {
    test(`an incoming X-Request-Id ${name} is replaced`, async () => {
      const response = await fetch(`${url}/healthz`, { headers: { 'x-request-id': insane } });
      const id = response.headers.get('x-request-id') ?? '';
      assert.notEqual(id, insane);
      assert.match(id, /^[A-Za-z0-9]{32}$/);
    });
  }

  test('an X-Request-Id folded over a newline is refused with a fresh id and a JSON body', async () => {
    const response = await rawRequest('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: abcdefgh\r\n ijklmnop\r\nConnection: close\r\n\r\n');
    assert.equal(response.status, 400);
    const id = response.headers.get('x-request-id') ?? '';
    assert.match(id, /^[A-Za-z0-9]{32}$/);
    const body = JSON.parse(response.body) as { error: string; request_id: string };
    assert.equal(body.error, 'invalid_request');
    assert.equal(body.request_id, id);
  });

  test('request headers too large answer 431 with X-Request-Id', async () => {
    const response = await rawRequest(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\nConnection: close\r\n\r\n`);
    assert.equal(response.status, 431);
    assert.match(response.headers.get('x-request-id') ?? '', /^[A-Za-z0-9]{32}$/);
  });
});

describe('JSON errors', () => {
  test('an unknown route answers a JSON 404 with the request id', async () => {
    const response = await fetch(`${url}/application/o/nothing/here/at/all`);
    assert.equal(response.status, 404);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    const body = (await response.json()) as { error: string; request_id: string };
    assert.equal(body.error, 'not_found');
    assert.equal(body.request_id, response.headers.get('x-request-id'));
  });

  test('a known path with another method answers a JSON 405 with Allow', async () => {
    const response = await fetch(`${url}/healthz`, { method: 'DELETE' });
    assert.equal(response.status, 405);
    assert.match(response.headers.get('allow') ?? '', /GET/);
    const body = (await response.json()) as { error: string; request_id: string };
    assert.equal(body.error, 'invalid_request');
    assert.equal(body.request_id, response.headers.get('x-request-id'));
  });

  test('OAuth error bodies carry request_id equal to X-Request-Id', async () => {
    const response = await postRaw(TOKEN_ENDPOINT, 'grant_type=x&grant_type=y');
    assert.equal(response.status, 400);
    const body = (await response.json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(body).sort(), ['error', 'error_description', 'request_id']);
    assert.equal(body.request_id, response.headers.get('x-request-id'));
  });
});

describe('form-only guard on the OAuth endpoints', () => {
  async function expectInvalidRequest(response: Response, status = 400): Promise<Record<string, unknown>> {
    assert.equal(response.status, status);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(response.headers.get('cache-control'), 'no-store', 'token endpoint errors carry Cache-Control: no-store');
    const body = (await response.json()) as Record<string, unknown>;
    assert.equal(body.error, 'invalid_request');
    assert.equal(typeof body.error_description, 'string');
    assert.equal(body.request_id, response.headers.get('x-request-id'));
    return body;
  }

  test('a JSON body on the token endpoint is invalid_request', async () => {
    await expectInvalidRequest(await postRaw(TOKEN_ENDPOINT, JSON.stringify({ grant_type: 'client_credentials' }), 'application/json'));
  });

  test('a text/plain body on the token endpoint is invalid_request', async () => {
    await expectInvalidRequest(await postRaw(TOKEN_ENDPOINT, 'grant_type=client_credentials', 'text/plain'));
  });

  test('a form body in another charset is invalid_request', async () => {
    await expectInvalidRequest(await postRaw(TOKEN_ENDPOINT, 'grant_type=client_credentials', 'application/x-www-form-urlencoded; charset=iso-8859-1'));
  });

  test('a body over 64 KiB answers 413 with a JSON body', async () => {
    const body = await expectInvalidRequest(await postRaw(TOKEN_ENDPOINT, `grant_type=client_credentials&pad=${'x'.repeat(64 * 1024)}`), 413);
    assert.match(String(body.error_description), /65536/);
  });

  test('a body of exactly 64 KiB is read (not 413)', async () => {
    const prefix = 'grant_type=x&pad=';
    const response = await postRaw(TOKEN_ENDPOINT, prefix + 'x'.repeat(64 * 1024 - prefix.length));
    assert.notEqual(response.status, 413);
    await response.body?.cancel();
  });

  test('a chunked body over 64 KiB (no Content-Length) answers 413', async () => {
    const chunk = new TextEncoder().encode('pad='.padEnd(16 * 1024, 'x'));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 5; i++) controller.enqueue(chunk);
        controller.close();
      },
    });
    const response = await fetch(`${url}${TOKEN_ENDPOINT}`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: stream, duplex: 'half',
    } as RequestInit & { duplex: 'half' });
    await expectInvalidRequest(response, 413);
  });

  test('a parameter given twice is invalid_request', async () => {
    const body = await expectInvalidRequest(await postRaw(TOKEN_ENDPOINT, 'grant_type=client_credentials&client_id=a&client_id=a'));
    assert.match(String(body.error_description), /client_id/);
  });

  test('a bad percent-escape is invalid_request', async () => {
    await expectInvalidRequest(await postRaw(TOKEN_ENDPOINT, 'grant_type=client_credentials&client_id=%ZZ'));
  });

  test('a percent-escape of invalid UTF-8 is invalid_request', async () => {
    await expectInvalidRequest(await postRaw(TOKEN_ENDPOINT, 'grant_type=client_credentials&client_id=%FF%FE'));
  });

  test('raw invalid UTF-8 bytes in the body are invalid_request', async () => {
    const bytes = Buffer.concat([Buffer.from('grant_type=client_credentials&client_id='), Buffer.from([0xc3, 0x28, 0xff])]);
    await expectInvalidRequest(await postRaw(TOKEN_ENDPOINT, bytes));
  });

  test('a POST with no body at all is not refused as a content-type problem', async () => {
    const response = await fetch(`${url}${TOKEN_ENDPOINT}`, { method: 'POST' });
    const body = (await response.json()) as { error: string; error_description: string };
    assert.equal(response.status, 400);
    assert.equal(body.error, 'invalid_request');
    assert.match(body.error_description, /grant_type/, 'it got past the body checks to the missing grant_type');
  });

  test('client_id[$ne]=x is a literal parameter name, never a query operator', async () => {
    const parsed = parseFormEncoded('client_id[$ne]=x&client_secret[$gt]=', 'test');
    assert.deepEqual([...parsed.entries()], [['client_id[$ne]', 'x'], ['client_secret[$gt]', '']]);

    // A real client exists, so an operator that matched "any client" would find one.
    const provider = await server.server.services.providers.create({ name: 'Guard', slug: 'guard', signingAlgorithm: 'EdDSA' });
    await server.server.services.clients.create({ providerId: provider.id, name: 'c', type: 'CONFIDENTIAL', grantTypes: ['CLIENT_CREDENTIALS'] });
    const grantType = GRANTS[0]?.grantType ?? 'client_credentials';
    for (const body of [
      `grant_type=${encodeURIComponent(grantType)}&client_id[$ne]=x&client_secret[$ne]=x`,
      `grant_type=${encodeURIComponent(grantType)}&client_id=${encodeURIComponent('{"$ne":null}')}&client_secret=${encodeURIComponent('{"$ne":null}')}`,
    ]) {
      const response = await postRaw(TOKEN_ENDPOINT, body);
      const answer = (await response.json()) as Record<string, unknown>;
      assert.equal(answer.access_token, undefined);
      assert.ok(response.status === 400 || response.status === 401, `status ${response.status}`);
      // With a grant registered, the request reaches client authentication and finds no such client.
      const expected = GRANTS.length > 0 ? ['invalid_client', 'invalid_request'] : ['unsupported_grant_type'];
      assert.ok(expected.includes(String(answer.error)), `error ${String(answer.error)}`);
    }
  });
});

describe('the request log', () => {
  test('one line per request with its id, and no secret from headers, bodies or query strings', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter((l) => l !== ''));
        done();
      },
    });
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'tessera-log-'));
    const bootstrap = 'log-test-bootstrap-token-0123456789';
    const config = loadConfig({ PORT: String(await freePort()), HOST: '127.0.0.1', TESSERA_DATA_DIR: dataDir, TESSERA_BOOTSTRAP_TOKEN: bootstrap, TESSERA_LOG_LEVEL: 'debug' });
    const running = await startServer(config, createLogger(config.logLevel, sink));
    try {
      const secrets = ['secret-in-header-0123456789', 'secret-in-body-0123456789', 'secret-in-query-0123456789'];
      await (await fetch(`${running.url}/graphql`, {
        method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${secrets[0]}` }, body: '{"query":"{ providers { id } }"}',
      })).text();
      await (await fetch(`${running.url}/application/o/token/`, {
        method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-request-id': 'log-test-request-1' },
        body: `grant_type=client_credentials&client_id=nobody&client_secret=${secrets[1]}`,
      })).text();
      await (await fetch(`${running.url}/device?code=${secrets[2]}`)).text();
      await (await fetch(`${running.url}/graphql`, {
        method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${bootstrap}` }, body: '{"query":"{ providers { id } }"}',
      })).text();

      const requests = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'request');
      assert.ok(requests.length >= 4, `${requests.length} request lines`);
      const token = requests.find((l) => l.clientRequestId === 'log-test-request-1');
      assert.notEqual(token?.requestId, 'log-test-request-1', "the client's id is kept beside the server's, never as it");
      assert.equal(token?.path, '/application/o/token/');
      assert.equal(token?.method, 'POST');
      assert.equal(token?.status, 401);
      const everything = lines.join('\n');
      for (const secret of [...secrets, bootstrap]) assert.ok(!everything.includes(secret), `the log never holds ${secret}`);
    } finally {
      await running.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
