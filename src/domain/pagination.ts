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

/** `order` 1 = oldest first, -1 = newest first. The filter may use $or; it is kept apart from the page condition. */
export async function keysetPage<T extends { id: string; createdAt: Date }>(
  collection: DocumentCollection<T>,
  filter: Filter,
  request: PageRequest,
  order: 1 | -1,
): Promise<Page<T>> {
  if (request.first === 0) return { items: [], hasNextPage: (await collection.find(afterFilter(filter, request.after, order), { limit: 1 })).length > 0 };
  const rows = await collection.find(afterFilter(filter, request.after, order), {
    sort: { createdAt: order, id: order },
    limit: request.first + 1,
  });
  return { items: rows.slice(0, request.first), hasNextPage: rows.length > request.first };
}

function afterFilter(filter: Filter, after: PagePosition | null, order: 1 | -1): Filter {
  if (!after) return filter;
  const [orEqual, strictly] = order === 1 ? (['$gte', '$gt'] as const) : (['$lte', '$lt'] as const);
  const { $or, ...rest } = filter;
  // The range on createdAt stays at the top so both stores answer it from the createdAt index;
  // the $or only breaks ties between records created in the same millisecond.
  const paged: Filter = {
    ...rest,
    createdAt: { [orEqual]: after.createdAt },
    $or: [{ createdAt: { [strictly]: after.createdAt } }, { id: { [strictly]: after.id } }],
  };
  if ($or) paged.$and = [...((rest.$and as Filter[] | undefined) ?? []), { $or }];
  return paged;
}
