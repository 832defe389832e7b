/**
 * Bounded work before authentication (contract, version 2): /graphql refuses a request without a
 * valid admin token before it reads the body, so a MiB of nested JSON costs an anonymous caller's
 * target nothing to refuse.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { GRAPHQL_BODY_LIMIT } from '../../src/admin/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(() => server.stop());

/** `[[[[…]]]]`: exactly `bytes` of deeply nested JSON, the most expensive shape to parse. */
function nestedJson(bytes: number): string {
  return '['.repeat(bytes / 2) + ']'.repeat(bytes / 2);
}

/**
 * Sends the headers of a POST declaring a body of `declared` bytes, and only `body`'s first bytes:
 * resolves with the status line once the server answers (or null if it has not within `waitMs`).
 */
function answerBeforeBody(authorization: string | null, body: string, declared: number, waitMs: number): Promise<{ status: number; ms: number } | null> {
  const { hostname, port } = new URL(server.url);
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = net.connect(Number(port), hostname, () => {
      const auth = authorization === null ? '' : `Authorization: ${authorization}\r\n`;
      socket.write(`POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${auth}Content-Length: ${declared}\r\n\r\n`);
      socket.write(body);
    });
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(null);
    }, waitMs);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      data += chunk;
      if (!data.includes('\r\n')) return;
      clearTimeout(timer);
      socket.destroy();
      resolve({ status: Number(data.split(' ')[1]), ms: performance.now() - started });
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

for (const [name, authorization] of [['no token', null], ['an unknown token', 'Bearer not-a-token-0123456789'], ['not a Bearer token', 'Basic YWRtaW46YWRtaW4=']] as const) {
  test(`with ${name}, a declared MiB body is refused with 401 before it has arrived`, async () => {
    const partial = nestedJson(GRAPHQL_BODY_LIMIT).slice(0, 64 * 1024);
    const answer = await answerBeforeBody(authorization, partial, GRAPHQL_BODY_LIMIT, 3000);
    assert.ok(answer, 'the server answered without waiting for the rest of the body');
    assert.equal(answer.status, 401);
  });
}

test('a whole MiB of nested JSON without a token: 401 UNAUTHENTICATED, not a parse', async () => {
  const started = performance.now();
  const response = await fetch(`${server.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: nestedJson(GRAPHQL_BODY_LIMIT) });
  const body = (await response.json()) as { errors: { extensions: { code: string } }[] };
  assert.equal(response.status, 401);
  assert.equal(body.errors[0]!.extensions.code, 'UNAUTHENTICATED');
  assert.ok(performance.now() - started < 2000, `${Math.round(performance.now() - started)} ms`);
});

test('with the admin token, the body is read and parsed as before (a malformed one is 400)', async () => {
  const response = await fetch(`${server.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${server.adminToken}` }, body: '{"query": ' });
  assert.equal(response.status, 400);
  const ok = await server.gqlRaw('{ providers { id } }');
  assert.equal(ok.status, 200);
});
