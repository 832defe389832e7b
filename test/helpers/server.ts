/**
 * Starts a real Tessera (the same code path as `npm start`) on a free port with a fresh embedded
 * store, and gives tests an admin token and a GraphQL helper.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/http/logger.js';
import { startServer, type RunningServer, type StartOptions } from '../../src/server.js';

export interface TestServer {
  url: string;
  adminToken: string;
  server: RunningServer;
  dataDir: string;
  /** POST /graphql as the admin; throws when the answer has errors unless `allowErrors`. */
  gql<T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>): Promise<T>;
  gqlRaw(query: string, variables?: Record<string, unknown>, token?: string | null): Promise<{ status: number; body: GraphQLBody }>;
  stop(): Promise<void>;
}

export interface GraphQLBody {
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: { code?: string; field?: string } }[];
}

export const TEST_ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';

/** A port free right now, so the public URL (issuers, verification URIs) can name it up front. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

export async function startTestServer(env: Record<string, string> = {}, existingDataDir?: string, options: StartOptions = {}): Promise<TestServer> {
  const dataDir = existingDataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'tessera-test-')));
  const port = await freePort();
  const config = loadConfig({
    PORT: String(port),
    HOST: '127.0.0.1',
    TESSERA_DATA_DIR: dataDir,
    TESSERA_BOOTSTRAP_TOKEN: TEST_ADMIN_TOKEN,
    TESSERA_LOG_LEVEL: process.env.TESSERA_TEST_LOG_LEVEL ?? 'silent',
    ...env,
  });
  const server = await startServer(config, createLogger(config.logLevel), options);
  const url = server.url;

  const gqlRaw: TestServer['gqlRaw'] = async (query, variables, token = TEST_ADMIN_TOKEN) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    const response = await fetch(`${url}/graphql`, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
    return { status: response.status, body: (await response.json()) as GraphQLBody };
  };

  return {
    url,
    adminToken: TEST_ADMIN_TOKEN,
    server,
    dataDir,
    gqlRaw,
    async gql<T>(query: string, variables?: Record<string, unknown>): Promise<T> {
      const { body } = await gqlRaw(query, variables);
      if (body.errors?.length) throw new Error(`GraphQL errors: ${JSON.stringify(body.errors)}`);
      return body.data as T;
    },
    async stop() {
      await server.stop();
      if (!existingDataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** application/x-www-form-urlencoded POST; pairs (rather than a record) may repeat a name. */
export async function postForm(
  url: string, form: Record<string, string> | [string, string][], headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
  const text = await response.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { raw: text };
  }
  return { status: response.status, headers: response.headers, body };
}

export function basic(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

/** An HTTP answer as it came over a raw socket (tests that send bytes fetch would refuse or normalise). */
export interface RawAnswer {
  status: number;
  headers: Map<string, string>;
  /** Header names as sent, lower-cased, one per line (to see a header sent twice). */
  names: string[];
  body: string;
}

/**
 * Connects to `url`'s host and port, lets `send` write the request (all at once or in parts), and
 * reads the answer until the server closes the connection.
 */
export function rawExchange(url: string, send: (socket: net.Socket) => void | Promise<void>): Promise<RawAnswer> {
  const { port, hostname } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => {
      Promise.resolve(send(socket)).catch(reject);
    });
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const [head = '', ...rest] = data.split('\r\n\r\n');
      const [statusLine = '', ...lines] = head.split('\r\n');
      const names = lines.map((l) => l.slice(0, l.indexOf(':')).toLowerCase());
      const headers = new Map(lines.map((l, i) => [names[i]!, l.slice(l.indexOf(':') + 1).trim()] as [string, string]));
      resolve({ status: Number(statusLine.split(' ')[1]), headers, names, body: rest.join('\r\n\r\n') });
    });
  });
}
