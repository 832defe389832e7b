/**
 * Keyset pagination over (createdAt, id): a page is "the next N records after this one" in that
 * order, so a deep page costs what the first one does (an index range, never a skip over every
 * earlier record), and records inserted meanwhile neither repeat nor vanish from later pages.
 */
import type { DocumentCollection, Filter } from '../store/ports.js';
import { ValidationError } from './errors.js';

export interface PagePosition {
  createdAt: Date;
  id: string;
}

export interface PageRequest {
  first: number;
  after: PagePosition | null;
}

export interface Page<T> {
  items: T[];
  hasNextPage: boolean;
  /** How many records match the filter in all, when finding the page told it for free (a first page holding every match). */
  totalCount?: number;
}

export const PAGE_SIZE = { default: 50, max: 500 } as const;

/** `first` as the contract's connections take it: default 50, 0–500. */
export function validatePageSize(first: number | null | undefined): number {
  if (first === null || first === undefined) return PAGE_SIZE.default;
  if (!Number.isInteger(first) || first < 0 || first > PAGE_SIZE.max) {
    throw new ValidationError('first', `must be a whole number from 0 to ${PAGE_SIZE.max}`);
  }
  return first;
}

/**
 * One page in (createdAt, id) order: `order` -1 = newest first, 1 = oldest first. The filter may
 * use $or and $and (kept apart from the page condition); it must not use `createdAt` at its top
 * level, nor `id` inside $and.
 *
 * Asked in createdAt order only, which both stores answer from their createdAt index in order,
 * stopping at the limit (each walks its createdAt index), where (createdAt, id) would have them
 * sort every match first:
 * neither has an index on the pair. The page is then completed with the records that share the
 * last one's createdAt: those are the only ones whose place the createdAt order leaves open (every
 * record nearer than it is in the answer, every one farther comes after all of them), and the id
 * orders them.
 */
export async function keysetPage<T extends { id: string; createdAt: Date }>(
  collection: DocumentCollection<T>,
  filter: Filter,
  request: PageRequest,
  order: 1 | -1,
): Promise<Page<T>> {
  const limit = request.first + 1;
  const paged = pageFilter(filter, request.after, order);
  const rows = await collection.find(paged, { sort: { createdAt: order }, limit });
  if (rows.length < limit) {
    // Every match is here: no ties are missing, and a first page knows the total.
    rows.sort(compareBy(order));
    return { items: rows.slice(0, request.first), hasNextPage: false, ...(request.after ? {} : { totalCount: rows.length }) };
  }
  const last = rows[rows.length - 1]!.createdAt;
  const nearer = rows.filter((row) => row.createdAt.getTime() !== last.getTime());
  const ties = await collection.find({ ...paged, createdAt: last });
  const all = [...nearer, ...ties].sort(compareBy(order));
  return { items: all.slice(0, request.first), hasNextPage: all.length > request.first };
}

function compareBy(order: 1 | -1) {
  return (a: { createdAt: Date; id: string }, b: { createdAt: Date; id: string }): number =>
    order * (a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Records after the cursor in the page order. */
function pageFilter(filter: Filter, after: PagePosition | null, order: 1 | -1): Filter {
  if (!after) return filter;
  const [towards, strictly] = order === 1 ? (['$gte', '$gt'] as const) : (['$lte', '$lt'] as const);
  const { $or, ...rest } = filter;
  // The range on createdAt stays at the top so both stores answer it from the createdAt index;
  // the cursor's $or only breaks ties between records created in the same millisecond.
  const paged: Filter = { ...rest, createdAt: { [towards]: after.createdAt } };
  paged.$or = [{ createdAt: { [strictly]: after.createdAt } }, { id: { [strictly]: after.id } }];
  if ($or) paged.$and = [...(rest.$and ?? []), { $or }];
  return paged;
}
