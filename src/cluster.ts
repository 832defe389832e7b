/**
 * TESSERA_WORKERS=N: N processes (node:cluster) sharing the listening port, so a machine's cores
 * are used. Only with MongoDB, where everything that must hold across processes is decided by
 * atomic conditional updates in the store; the embedded store is one process's files, so it runs
 * one process and says so at start-up.
 *
 * The primary serves nothing itself: it forks the workers, replaces one that dies, and forwards
 * SIGTERM/SIGINT for a graceful shutdown. Worker 1 starts alone and runs the start-up bootstrap
 * (which may create `admin` and print the first-start "Admin token:" line); the others start once it
 * is ready, when their own bootstrap finds `admin` there and only reads. So two workers can never
 * both create `admin`, and the token line is printed once.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type { Config } from './config.js';

const READY = 'tessera:worker-ready';
/** How long workers get to finish in-flight requests on shutdown before they are killed. */
const SHUTDOWN_GRACE_MS = 15_000;
/** Deaths within this window make the next replacement wait longer (a crash loop must not spin). */
const DEATH_WINDOW_MS = 60_000;

export type ProcessRole = 'single' | 'primary' | 'worker';

export function processRole(config: Config): ProcessRole {
  if (cluster.isWorker) return 'worker';
  return config.workers > 1 && config.mongodbUri ? 'primary' : 'single';
}

/** A worker's log lines say which worker wrote them. */
export function workerLogger(logger: Logger): Logger {
  return cluster.isWorker && cluster.worker ? logger.child({ worker: cluster.worker.id, pid: process.pid }) : logger;
}

/** On the embedded store, TESSERA_WORKERS > 1 is not honoured: say so rather than ignore it silently. */
export function warnIfWorkersIgnored(config: Config, logger: Logger): void {
  if (config.workers > 1 && !config.mongodbUri && !cluster.isWorker) {
    logger.warn(
      { workers: config.workers, store: 'embedded' },
      `TESSERA_WORKERS=${config.workers} ignored: the embedded store is used by one process only, so Tessera runs one process (set TESSERA_MONGODB_URI to run several)`,
    );
  }
}

/** Tells the primary this worker listens (and has run its bootstrap). */
export function notifyPrimaryReady(): void {
  if (cluster.isWorker) process.send?.({ type: READY });
}

function isReadyMessage(message: unknown): boolean {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === READY;
}

const liveWorkers = (): Worker[] => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);

/** Workers still running SHUTDOWN_GRACE_MS after the SIGTERM are killed, and the primary exits. */
function killAfterGrace(logger: Logger): void {
  setTimeout(() => {
    for (const worker of liveWorkers()) worker.process.kill('SIGKILL');
    logger.error('workers did not stop in time; killed');
    process.exit(1);
  }, SHUTDOWN_GRACE_MS).unref();
}

/** The deaths within DEATH_WINDOW_MS, this one (at `now`) included. */
const recentDeaths = (deaths: number[], now: number): number[] => [...deaths.filter((t) => now - t < DEATH_WINDOW_MS), now];

/** A crash loop backs off: the first death restarts at once, then 1 s, 2 s, ... up to 30 s. */
const restartDelayMs = (deaths: number[]): number => (deaths.length <= 1 ? 0 : Math.min(30_000, 500 * 2 ** (deaths.length - 1)));

/** The primary process: never returns; exits when the workers are gone after a signal, or when start-up fails. */
export function runPrimary(config: Config, logger: Logger): void {
  const wanted = config.workers;
  const ready = new Set<number>();
  let allReadyOnce = false;
  let shuttingDown = false;
  let exitCode = 0;
  let deaths: number[] = [];
  const pendingRestarts = new Set<NodeJS.Timeout>();

  const fork = (): Worker => {
    const worker = cluster.fork();
    worker.on('message', (message: unknown) => {
      if (!isReadyMessage(message)) return;
      ready.add(worker.id);
      if (!allReadyOnce && ready.size === 1) {
        // The first worker has run the bootstrap: now the others may start.
        for (let i = 1; i < wanted; i++) fork();
      }
      if (!allReadyOnce && ready.size >= wanted) {
        allReadyOnce = true;
        logger.info({ workers: wanted, url: config.publicUrl, listen: `${config.host}:${config.port}`, primaryPid: process.pid }, 'tessera ready (cluster)');
      }
    });
    return worker;
  };

  const finishIfDone = () => {
    if (shuttingDown && liveWorkers().length === 0) process.exit(exitCode);
  };

  const shutdown = (signal: string, code: number) => {
    if (shuttingDown) return;
    shuttingDown = true;
    exitCode = code;
    logger.info({ signal }, 'shutting down workers');
    for (const timer of pendingRestarts) clearTimeout(timer);
    pendingRestarts.clear();
    for (const worker of liveWorkers()) {
      if (!worker.isDead()) worker.process.kill('SIGTERM');
    }
    killAfterGrace(logger);
    finishIfDone();
  };

  cluster.on('exit', (worker, code, signal) => {
    const wasReady = ready.delete(worker.id);
    if (shuttingDown) {
      finishIfDone();
      return;
    }
    if (!allReadyOnce && !wasReady) {
      // A worker that cannot start (configuration, store, port) has said why on stderr: stop.
      logger.error({ worker: worker.id, code, signal }, 'a worker failed to start; stopping');
      shutdown('start-up failure', 1);
      return;
    }
    if (code === 0 && !signal) {
      // Asked to stop on its own (a signal sent to that worker alone): not a crash, not replaced.
      logger.warn({ worker: worker.id }, 'a worker exited cleanly; not replaced');
      if (liveWorkers().length === 0) process.exit(0);
      return;
    }
    deaths = recentDeaths(deaths, Date.now());
    const delay = restartDelayMs(deaths);
    logger.error({ worker: worker.id, pid: worker.process.pid, code, signal, restartInMs: delay }, 'a worker died; starting a replacement');
    const timer = setTimeout(() => {
      pendingRestarts.delete(timer);
      if (!shuttingDown) fork();
    }, delay);
    pendingRestarts.add(timer);
  });

  process.on('SIGTERM', () => shutdown('SIGTERM', 0));
  process.on('SIGINT', () => shutdown('SIGINT', 0));

  logger.info({ workers: wanted, primaryPid: process.pid }, `starting ${wanted} workers`);
  // Worker 1 alone first: it runs the bootstrap.
  fork();
}
