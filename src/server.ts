/**
 * Starting and stopping one Tessera process; used by main.ts and by tests that need a real server.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { ConfigError, resolveSecretKey } from './config.js';
import { openStore } from './store/index.js';
import { createServices, type Services } from './domain/services.js';
import { bootstrapAdmin } from './domain/bootstrap.js';
import { newRequestId } from './http/request-id.js';
import type { Clock } from './domain/keys.js';

export interface StartOptions {
  /** The time key rotation goes by (tests move it). */
  clock?: Clock;
}
import { startTracing } from './telemetry/otel.js';

export interface RunningServer {
  url: string;
  services: Services;
  /** The admin token printed on a first start, if one was made. */
  firstStartToken: string | null;
  stop: () => Promise<void>;
}

export async function startServer(config: Config, logger: Logger, options: StartOptions = {}): Promise<RunningServer> {
  const secretKey = resolveSecretKey(config);
  const configured = { ...config, secretKey };
  // The HTTP layer's modules (Apollo, type-graphql, Koa: most of the start-up time) load while
  // the store opens its files.
  const appModule = import('./app.js');
  appModule.catch(() => undefined);
  // Before the store and the app: both are instrumented only when tracing is on.
  const tracing = await startTracing(logger);
  const store = await openStore({
    mongodbUri: config.mongodbUri, dataDir: config.dataDir,
    eventRetentionDays: config.eventRetentionDays, embeddedMaxEvents: config.embeddedMaxEvents, durability: config.durability,
  });
  const services = createServices(configured, store, logger, secretKey, options.clock);
  if (!(await services.keys.secretKeyMatches())) {
    await store.close();
    throw new ConfigError('TESSERA_SECRET_KEY', config.secretKey
      ? 'does not decrypt the signing keys in the store; set the key they were made with'
      : `the key kept in ${config.dataDir}/secret.key does not decrypt the signing keys in the store; restore the original file or set TESSERA_SECRET_KEY`);
  }
  const { printedToken } = await bootstrapAdmin(services);
  const nextKeys = await services.keys.migrate();
  if (nextKeys > 0) logger.info({ providers: nextKeys }, 'signing keys: NEXT keys made (published now, signing at the next rotation)');
  const legacy = await services.generatedAccounts.migrateLegacyAccounts();
  if (legacy.migrated > 0) logger.info({ migrated: legacy.migrated }, 'generated service accounts of round 1 keyed by identity');
  if (legacy.ambiguous.length > 0) {
    logger.warn({ accounts: legacy.ambiguous.slice(0, 20), count: legacy.ambiguous.length },
      'generated service accounts whose attributes name two identities were left unkeyed and are no longer used; check and delete them');
  }
  const app = await (await appModule).createApp(services);

  const handle = app.koa.callback();
  let draining = false;
  // Responses sent while draining tell the client the connection is closing. (Checked here rather
  // than in a second 'request' listener: an event with two listeners copies its listener array
  // on every emit.)
  const server = http.createServer((request, response) => {
    if (draining) response.shouldKeepAlive = false;
    responding.set(request.socket, response);
    void handle(request, response);
  });
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 30_000;
  server.on('clientError', answerClientError);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  services.keyRotation.start();
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${address.port}`;

  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      // Stop accepting, let in-flight requests finish, drop idle keep-alive sockets. A connection
      // whose request finishes during the drain turns idle afterwards: sweep those too, or one
      // keep-alive client would hold the process until the forced close.
      draining = true;
      await services.keyRotation.stop();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const sweep = setInterval(() => server.closeIdleConnections(), 50);
      const forced = setTimeout(() => server.closeAllConnections(), 10_000);
      await closed;
      clearInterval(sweep);
      clearTimeout(forced);
      await app.close();
      await services.events.close();
      await store.close();
      await tracing.flush();
    })());

  return { url, services, firstStartToken: printedToken, stop };
}

/** The response last begun on each socket: a parse error on a socket still answering one must not write into it. */
const responding = new WeakMap<object, http.ServerResponse>();

/**
 * Requests Node's parser refuses (malformed, header too large) never reach Koa: answer them with
 * the contract's JSON body and an X-Request-Id too, instead of Node's bare 400.
 */
function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  const response = responding.get(socket);
  if (error.code === 'ECONNRESET' || !socket.writable || (response !== undefined && !response.writableFinished)) {
    socket.destroy();
    return;
  }
  const [status, description] =
    error.code === 'HPE_HEADER_OVERFLOW' ? ['431 Request Header Fields Too Large', 'the request headers are too large']
    : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? ['408 Request Timeout', 'the request took too long to arrive']
    : ['400 Bad Request', 'the request is not valid HTTP'];
  const id = newRequestId();
  const body = JSON.stringify({ error: 'invalid_request', error_description: description, request_id: id });
  socket.end(`HTTP/1.1 ${status}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${id}\r\nConnection: close\r\n\r\n${body}`);
}
