/**
 * Keyset pagination over (createdAt, id): a page is "the next N records after this one" in that
 * order, so a deep page costs what the first one does (an index range, never a skip over every
 * earlier record), and records inserted meanwhile neither repeat nor vanish from later pages.
 */
import type { DocumentCollection, Filter, Operators } from '../store/ports.js';
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

/** The first window a page looks in; each miss makes it WINDOW_GROWTH times wider. */
const FIRST_WINDOW_MS = 1_000;
const WINDOW_GROWTH = 16;
/** Windows up to this wide are tried before asking how far the records reach at all. */
const PROBE_LIMIT_MS = 86_400_000;

/**
 * One page in (createdAt, id) order: `order` -1 = newest first, 1 = oldest first. The filter may
 * use $or and $and (kept apart from the page condition); it must not use `id` inside $and.
 *
 * A store sorts everything a query matches before it applies the limit, and the embedded store
 * does so in memory, so "the 50 newest of 100,000" would sort 100,000 records. So the page is
 * looked for in a time window next to the cursor (or next to now), widened until it holds a page;
 * whether it does is asked without sorting (a query with a limit stops early), and only the window
 * that does is sorted: about as many records as the page needs. Both stores answer the range on
 * createdAt from its index. Every record outside the window comes after every record inside it,
 * so a window's first N records are the page.
 *
 * Past a day (or at once for `sparse` filters such as a search), one unsorted query over everything either finds that fewer than a page match at
 * all (a narrow search: done, and the total is known) or yields records whose farthest bounds how
 * wide the window ever needs to grow.
 */
export async function keysetPage<T extends { id: string; createdAt: Date }>(
  collection: DocumentCollection<T>,
  filter: Filter,
  request: PageRequest,
  order: 1 | -1,
  options: { sparse?: boolean } = {},
): Promise<Page<T>> {
  const limit = request.first + 1;
  const sort = { createdAt: order, id: order } as const;
  const page = (rows: T[]): Page<T> => ({ items: rows.slice(0, request.first), hasNextPage: rows.length === limit });
  const inWindow = (edge: number | null) => pageFilter(filter, request.after, order, edge === null ? null : new Date(edge));
  const sortedPage = async (edge: number | null) => page(await collection.find(inWindow(edge), { sort, limit }));
  const holdsPage = async (edge: number) => (await collection.find(inWindow(edge), { limit })).length === limit;

  const anchor = request.after?.createdAt.getTime() ?? (order === -1 ? Date.now() : null);
  // Oldest first with no cursor has nothing to anchor a window to.
  if (anchor === null) return sortedPage(null);
  const reachable = (edge: number) => (order === -1 ? edge > 0 : edge < Date.now() + PROBE_LIMIT_MS);

  let span = FIRST_WINDOW_MS;
  // Windows over sparse matches would each scan their records and find too few: try one, then ask.
  const probeLimit = options.sparse ? FIRST_WINDOW_MS : PROBE_LIMIT_MS;
  for (; span <= probeLimit && reachable(anchor + order * span); span *= WINDOW_GROWTH) {
    if (await holdsPage(anchor + order * span)) return sortedPage(anchor + order * span);
  }

  const sample = await collection.find(inWindow(null), { limit });
  if (sample.length < limit) return { ...page(sample.sort(compareBy(order))), ...(request.after ? {} : { totalCount: sample.length }) };
  // [anchor, farthest] holds at least a page.
  const times = sample.map((r) => r.createdAt.getTime());
  const farthest = order === -1 ? Math.min(...times) : Math.max(...times);
  for (; ; span *= WINDOW_GROWTH) {
    const edge = anchor + order * span;
    if (order === -1 ? edge <= farthest : edge >= farthest) break;
    if (await holdsPage(edge)) return sortedPage(edge);
  }
  const last = await sortedPage(farthest);
  // Records deleted meanwhile can leave even that window short: then ask without one.
  return last.hasNextPage ? last : sortedPage(null);
}

function compareBy(order: 1 | -1) {
  return (a: { createdAt: Date; id: string }, b: { createdAt: Date; id: string }): number =>
    order * (a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Records after the cursor in the page order, within the window (createdAt ≥ edge newest first, ≤ edge oldest first). */
function pageFilter(filter: Filter, after: PagePosition | null, order: 1 | -1, windowEdge: Date | null): Filter {
  const [towards, strictly, back] = order === 1 ? (['$gte', '$gt', '$lte'] as const) : (['$lte', '$lt', '$gte'] as const);
  const range: Operators = {};
  if (after) range[towards] = after.createdAt;
  if (windowEdge) range[back] = windowEdge;
  if (!after && !windowEdge) return filter;
  const { $or, ...rest } = filter;
  // The range on createdAt stays at the top so both stores answer it from the createdAt index;
  // the cursor's $or only breaks ties between records created in the same millisecond.
  const paged: Filter = { ...rest, createdAt: range };
  if (after) paged.$or = [{ createdAt: { [strictly]: after.createdAt } }, { id: { [strictly]: after.id } }];
  if ($or) {
    if (paged.$or) paged.$and = [...((rest.$and as Filter[] | undefined) ?? []), { $or }];
    else paged.$or = $or;
  }
  return paged;
}
