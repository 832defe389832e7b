/**
 * The driver's errors, read the way the driver builds them (mongoose's copy of it: mongoose.mongo,
 * never a top-level `mongodb`, which may be another version or absent in production).
 */
import mongoose from 'mongoose';
import { StoreUnavailableError } from '../errors.js';

const { mongo } = mongoose;

// Server codes of a node that cannot serve now (the driver's retryable-read set, MongoDB's SDAM
// "not writable primary" / "node is recovering" codes): HostUnreachable, HostNotFound,
// NetworkTimeout, ShutdownInProgress, FailedToSatisfyReadPreference, PrimarySteppedDown,
// ExceededTimeLimit, SocketException, NotWritablePrimary, InterruptedAtShutdown,
// InterruptedDueToReplStateChange, NotPrimaryNoSecondaryOk, NotPrimaryOrSecondary.
const UNAVAILABLE_CODES = new Set([6, 7, 89, 91, 133, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436]);

/**
 * True when the error says MongoDB cannot be reached or cannot serve right now (not that the
 * request was wrong). A bulk write that failed for such a reason wraps the driver's error as its
 * errorResponse (bulk/common.js: `new MongoBulkWriteError(thrownError, ...)`), so that is read too.
 */
export function isUnavailable(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    if (
      current instanceof mongo.MongoNetworkError || current instanceof mongo.MongoServerSelectionError
      || current instanceof mongo.MongoTopologyClosedError || current instanceof mongo.MongoNotConnectedError
      || current instanceof mongo.MongoServerClosedError || current instanceof mongo.MongoClientClosedError
      || current instanceof mongo.MongoOperationTimeoutError
      // mongoose's own copy of a server selection error, from connecting
      || current instanceof mongoose.Error.MongooseServerSelectionError
    ) return true;
    const code = (current as { code?: unknown }).code;
    if (current instanceof mongo.MongoServerError && typeof code === 'number' && UNAVAILABLE_CODES.has(code)) return true;
    const wrapped = (current as { errorResponse?: unknown }).errorResponse;
    current = wrapped instanceof Error ? wrapped : current.cause;
  }
  return false;
}

/** The error to throw for `error`: StoreUnavailableError when MongoDB is out of reach, else itself. */
export function unavailableOr(error: unknown): unknown {
  if (error instanceof StoreUnavailableError || !isUnavailable(error)) return error;
  return new StoreUnavailableError(`MongoDB is not answering: ${(error as Error).message}`, { cause: error });
}

export interface DuplicateKey {
  /** The field, when the error names it (keyPattern, as the server sends for single writes). */
  field: string | null;
  /** The index, from the message ("… index: username_1 dup key: …"), for a lookup otherwise. */
  index: string | null;
}

/**
 * What a duplicate-key error (E11000) says about the key, or null for any other error. The driver
 * (7.x) builds each of a bulk write's writeErrors from the server's reply keeping only index,
 * code, errmsg, errInfo and op (bulk/common.js, mergeBatchResults): keyPattern and keyValue are
 * dropped, so for insertMany the index name in errmsg is all there is.
 */
export function duplicateKey(error: unknown): DuplicateKey | null {
  const bulk = (error as { writeErrors?: unknown } | null)?.writeErrors;
  const first = Array.isArray(bulk) && bulk.length > 0 ? bulk[0] as { code?: unknown; errmsg?: unknown; err?: unknown } : null;
  const source = (first ?? error) as { code?: unknown; keyPattern?: unknown; errmsg?: unknown; message?: unknown } | null;
  if (!source || source.code !== 11000) return null;
  const pattern = source.keyPattern && typeof source.keyPattern === 'object' ? Object.keys(source.keyPattern) : [];
  const message = typeof source.errmsg === 'string' ? source.errmsg : typeof source.message === 'string' ? source.message : '';
  // "index: username_1 dup key", or before MongoDB 3.0 "index: db.users.$username_1  dup key".
  const index = /\bindex: (?:\S+\.\$)?(\S+)\s+dup key/.exec(message)?.[1] ?? null;
  return { field: pattern[0] === undefined ? null : storedToField(pattern[0]), index };
}

/** `_id` is the record's `id` on the port. */
export function storedToField(key: string): string {
  return key === '_id' ? 'id' : key;
}
