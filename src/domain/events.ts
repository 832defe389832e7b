/**
 * The audit log. Events are queued and written in batches off the response path, flushed at
 * least every 100 ms and on shutdown: a crash can lose at most the last 100 ms of events,
 * never a token or a configuration change (those are written before the response).
 */
import type { Logger } from 'pino';
import type { AuditEvent } from './model.js';
import type { Collections } from '../store/ports.js';
import { timeOrderedUuid } from './time-ordered-id.js';

export interface EventInput {
  action: string;
  requestId?: string | null;
  clientId?: string | null;
  username?: string | null;
  context?: Record<string, unknown>;
}

export const FLUSH_INTERVAL_MS = 100;
/**
 * Events per write: a flush writes its batch in runs of this many, one commit each, so that the
 * requests in between are answered (500 in one commit held the event loop 5–10 ms on the embedded
 * store, and so made the p99 of every request about that; runs of 100 hold it about 1.5 ms).
 */
const EVENTS_PER_WRITE = 100;

/** Where a request came from, added to the context of every event it records. */
export interface RequestOrigin {
  /** The client address (TESSERA_TRUST_PROXY decides whose X-Forwarded-For counts). */
  clientAddress: string;
  /** The client's own X-Request-Id, kept apart from the server's requestId. */
  clientRequestId: string | null;
}

export class EventLog {
  private queue: AuditEvent[] = [];
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();
  /**
   * The origin of each request in flight, by its (server-made) requestId: the HTTP frame adds it
   * when a request starts and removes it when it ends, so every event a request records names its
   * address without each call site passing it down through the domain code.
   */
  private readonly origins = new Map<string, RequestOrigin>();

  constructor(private readonly collections: Pick<Collections, 'events'>, private readonly logger: Logger) {}

  beginRequest(requestId: string, origin: RequestOrigin): void {
    this.origins.set(requestId, origin);
  }

  endRequest(requestId: string): void {
    this.origins.delete(requestId);
  }

  record(input: EventInput): AuditEvent {
    const origin = input.requestId ? this.origins.get(input.requestId) : undefined;
    const context = input.context ?? {};
    const event: AuditEvent = {
      id: timeOrderedUuid(),
      action: input.action,
      requestId: input.requestId ?? null,
      clientId: input.clientId ?? null,
      username: input.username ?? null,
      context: origin ? withOrigin(context, origin) : context,
      createdAt: new Date(),
    };
    this.queue.push(event);
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        void this.flush();
      }, FLUSH_INTERVAL_MS);
      this.timer.unref();
    }
    return event;
  }

  /** Writes everything queued so far; resolves when it is stored. */
  flush(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return this.flushing;
    this.flushing = this.flushing.then(async () => {
      for (let start = 0; start < batch.length; start += EVENTS_PER_WRITE) {
        const run = batch.slice(start, start + EVENTS_PER_WRITE);
        try {
          // Ids are fresh: a collision would be a bug, not a race.
          await this.collections.events.insertMany(run);
        } catch (error) {
          this.logger.error({ err: error, events: run.length, firstRequestId: run[0]!.requestId }, 'could not store audit events');
        }
      }
    });
    return this.flushing;
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.flush();
  }
}

function withOrigin(context: Record<string, unknown>, origin: RequestOrigin): Record<string, unknown> {
  const out: Record<string, unknown> = { ...context, clientAddress: origin.clientAddress };
  if (origin.clientRequestId !== null) out.clientRequestId = origin.clientRequestId;
  return out;
}
