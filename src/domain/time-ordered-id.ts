/**
 * Ids that sort by creation time (the layout of RFC 9562's UUID version 7: 48 bits of Unix
 * milliseconds, then random bits), for records written at a high rate and deleted oldest first:
 * audit events and the request ids they are looked up by. A random UUID puts each new index
 * entry, and each deleted one, on a random page of its index, which SQLite then writes whole to
 * the WAL; time-ordered ones append to the last pages and delete from the first. Measured with
 * batches of 500 events into a log capped at 40,000 (once the cap deletes the oldest): 36–39 µs
 * an event with random UUIDs, 16–20 with these. They are ids, not secrets: the random part only
 * keeps two made in the same millisecond (or by two processes) apart.
 */
import { randomBytesPooled } from './secrets.js';

/** 16 bytes: the time in the first 6 (big-endian), then random bits. */
function timeOrderedBytes(now: number): Buffer {
  const bytes = randomBytesPooled(16);
  bytes.writeUIntBE(now, 0, 6);
  return bytes;
}

/** A UUID of version 7 (RFC 9562 §5.7): 8-4-4-4-12 hex digits. */
export function timeOrderedUuid(now = Date.now()): string {
  const bytes = timeOrderedBytes(now);
  bytes[6] = (bytes[6]! & 0x0f) | 0x70; // version 7
  bytes[8] = (bytes[8]! & 0x3f) | 0x80; // variant 10
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** 32 hex digits: 12 of the time, 20 random (80 bits). */
export function timeOrderedHex(now = Date.now()): string {
  return timeOrderedBytes(now).toString('hex');
}
