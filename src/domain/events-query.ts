/** Reading the audit log: newest first, filtered by the fields admins look events up by. */
import type { AuditEvent } from './model.js';
import type { Collections, Filter } from '../store/ports.js';
import type { EventLog } from './events.js';
import { keysetPage, type Page, type PageRequest } from './pagination.js';
import { ValidationError } from './errors.js';

export interface EventListFilter {
  requestId?: string | null;
  action?: string | null;
  clientId?: string | null;
  username?: string | null;
}

const FILTER_FIELDS = ['requestId', 'action', 'clientId', 'username'] as const;

export class EventQuery {
  constructor(private readonly collections: Pick<Collections, 'events'>, private readonly log: EventLog) {}

  /** Flushes this process's queued events first, so an admin sees the events of its own last request. */
  async listPage(filter: EventListFilter, request: PageRequest): Promise<Page<AuditEvent>> {
    await this.log.flush();
    const where: Filter = {};
    for (const field of FILTER_FIELDS) {
      const value = filter[field];
      if (value === null || value === undefined) continue;
      if (value.length > 512) throw new ValidationError(`filter.${field}`, 'must be at most 512 characters');
      // An action is shared by many events: under $and, so the embedded store walks the createdAt
      // range of the page rather than every event of that action. The others pick few events.
      if (field === 'action') where.$and = [{ action: value }];
      else where[field] = value;
    }
    return keysetPage(this.collections.events, where, request, -1);
  }
}
