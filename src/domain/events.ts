/**
 * The audit log. Events are queued and written in batches off the response path, flushed at
 * least every 100 ms and on shutdown: a crash can lose at most the last 100 ms of events,
 * never a token or a configuration change (those are written before the response).
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { AuditEvent } from './model.js';
import type { Collections } from '../store/ports.js';

export interface EventInput {
  action: string;
  requestId?: string | null;
  clientId?: string | null;
  username?: string | null;
  context?: Record<string, unknown>;
}

export const FLUSH_INTERVAL_MS = 100;

export class EventLog {
  private queue: AuditEvent[] = [];
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();

  constructor(private readonly collections: Pick<Collections, 'events'>, private readonly logger: Logger) {}

  record(input: EventInput): AuditEvent {
    const event: AuditEvent = {
      id: randomUUID(),
      action: input.action,
      requestId: input.requestId ?? null,
      clientId: input.clientId ?? null,
      username: input.username ?? null,
      context: input.context ?? {},
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
      try {
        // One write for the batch (ids are fresh UUIDs: a collision would be a bug, not a race).
        await this.collections.events.insertMany(batch);
      } catch (error) {
        this.logger.error({ err: error, events: batch.length, firstRequestId: batch[0]!.requestId }, 'could not store audit events');
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
