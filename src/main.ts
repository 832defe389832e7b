/** Process entry: config → store → app → listen; graceful shutdown on SIGTERM/SIGINT. */
import { notifyPrimaryReady, processRole, runPrimary, warnIfWorkersIgnored, workerLogger } from './cluster.js';
import { ConfigError, loadConfig } from './config.js';
import { StoreUnavailableError } from './store/errors.js';
import { commandLine } from './usage.js';

async function main(): Promise<void> {
  // --help and --version print and exit; any other argument is refused. Neither starts a server.
  const answer = commandLine(process.argv.slice(2));
  if (answer) {
    process.stdout.write(answer.out);
    process.stderr.write(answer.err);
    process.exitCode = answer.code;
    return;
  }
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`tessera: configuration error: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  // The server's modules (most of the start-up time) load only once the configuration is valid,
  // so a bad variable is reported at once.
  const { createLogger } = await import('./http/logger.js');
  const logger = workerLogger(createLogger(config.logLevel));
  if (processRole(config) === 'primary') {
    // TESSERA_WORKERS > 1 with MongoDB: this process only forks and watches the workers.
    runPrimary(config, logger);
    return;
  }
  warnIfWorkersIgnored(config, logger);
  let server;
  try {
    const { startServer } = await import('./server.js');
    server = await startServer(config, logger);
  } catch (error) {
    if (error instanceof ConfigError || error instanceof StoreUnavailableError) {
      process.stderr.write(`tessera: cannot start: ${error.message}\n`);
      process.exit(1);
    }
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') {
      process.stderr.write(`tessera: cannot listen on ${config.host}:${config.port} (${code})\n`);
      process.exit(1);
    }
    // Anything else still gets one line; the stack only when asked for (debug/trace).
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    process.stderr.write(`tessera: cannot start: ${message.split('\n')[0]}\n`);
    if (config.logLevel === 'debug' || config.logLevel === 'trace') process.stderr.write(`${(error as Error).stack ?? ''}\n`);
    process.exit(1);
  }
  if (server.firstStartToken) {
    // Printed once, on stdout, for the operator: the contract's first-start admin token.
    process.stdout.write(`Admin token: ${server.firstStartToken}\n`);
  }
  logger.info({ url: config.publicUrl, listen: `${config.host}:${config.port}`, store: server.services.store.kind }, 'tessera ready');
  notifyPrimaryReady();

  let signalled = false;
  const shutdown = (signal: string) => {
    if (signalled) return;
    signalled = true;
    logger.info({ signal }, 'shutting down');
    server.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

void main();
