/**
 * Relay-style connections: opaque cursors (base64url of the record's createdAt and id, the keyset
 * the domain pages on) and PageInfo.
 */
import 'reflect-metadata';
import { Field, ObjectType } from 'type-graphql';
import { ValidationError } from '../domain/errors.js';
import { validatePageSize, type PagePosition, type PageRequest } from '../domain/pagination.js';

@ObjectType('PageInfo')
export class PageInfoType {
  @Field(() => Boolean) hasNextPage!: boolean;
  @Field(() => String, { nullable: true }) endCursor!: string | null;
}

export function encodeCursor(record: { createdAt: Date; id: string }): string {
  return Buffer.from(JSON.stringify([record.createdAt.getTime(), record.id]), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): PagePosition {
  const invalid = new ValidationError('after', 'is not a cursor this API gave out (use pageInfo.endCursor or an edge cursor)');
  if (cursor.length > 512 || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw invalid;
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid;
  }
  if (!Array.isArray(decoded) || decoded.length !== 2) throw invalid;
  const [ms, id] = decoded as [unknown, unknown];
  if (typeof ms !== 'number' || !Number.isSafeInteger(ms) || Math.abs(ms) > 8.64e15 || typeof id !== 'string' || id.length === 0 || id.length > 128) throw invalid;
  return { createdAt: new Date(ms), id };
}

export function pageRequest(first: number | null | undefined, after: string | null | undefined): PageRequest {
  return { first: validatePageSize(first), after: after ? decodeCursor(after) : null };
}

export function connection<T extends { createdAt: Date; id: string }>(page: { items: T[]; hasNextPage: boolean }) {
  const edges = page.items.map((node) => ({ node, cursor: encodeCursor(node) }));
  return { edges, pageInfo: { hasNextPage: page.hasNextPage, endCursor: edges.at(-1)?.cursor ?? null } };
}
