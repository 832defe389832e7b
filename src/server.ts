/**
 * Starting and stopping one Tessera process; used by main.ts and by tests that need a real server.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { resolveSecretKey } from './config.js';
import { openStore } from './store/index.js';
import { createServices, type Services } from './domain/services.js';
import { bootstrapAdmin } from './domain/bootstrap.js';
import { createApp } from './app.js';

export interface RunningServer {
  url: string;
  services: Services;
  /** The admin token printed on a first start, if one was made. */
  firstStartToken: string | null;
  stop: () => Promise<void>;
}

export async function startServer(config: Config, logger: Logger): Promise<RunningServer> {
  const secretKey = resolveSecretKey(config);
  const configured = { ...config, secretKey };
  const store = await openStore({ mongodbUri: config.mongodbUri, dataDir: config.dataDir });
  const services = createServices(configured, store, logger, secretKey);
  const { printedToken } = await bootstrapAdmin(services);
  const app = await createApp(services);

  const server = http.createServer(app.koa.callback());
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${address.port}`;

  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      // Stop accepting, let in-flight requests finish, drop idle keep-alive sockets.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const forced = setTimeout(() => server.closeAllConnections(), 10_000);
      await closed;
      clearTimeout(forced);
      await app.close();
      await services.events.close();
      await store.close();
    })());

  return { url, services, firstStartToken: printedToken, stop };
}
