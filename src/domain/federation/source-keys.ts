/**
 * The keys of each federated source, cached in this process.
 *
 * - A source with raw JWKS only: its record's keys, rebuilt when the record changes.
 * - A source with a jwksUrl or oidcDiscoveryUrl: the keys last fetched (by any process: they are
 *   stored back on the record with keysFetchedAt), fetched on first use when there are none, and
 *   refetched when a JWT names a kid we do not know, at most once per minute per source. The
 *   minute counts from this process's last attempt and from the record's keysFetchedAt, so a fleet
 *   of processes does not multiply the load on the source.
 * - A fetch is bounded in time (FetchTimeout), and concurrent requests share one fetch; a failed
 *   fetch counts as an attempt, so a source that is down costs one bounded wait per minute, not
 *   one per request.
 */
import { createLocalJWKSet, type JSONWebKeySet } from 'jose';
import type { FederatedSource } from '../model.js';
import type { Collections } from '../../store/ports.js';
import { fetchJwks } from './fetch-jwks.js';

export type KeySet = ReturnType<typeof createLocalJWKSet>;

export interface SourceKeyOptions {
  /** Bound on one refresh (discovery + JWKS), as seen by the request that waits for it. */
  fetchTimeoutMs: number;
  /** Minimum time between two fetches of one source. */
  minRefreshIntervalMs: number;
  /** Keys older than this are refreshed in the background (removed keys stop verifying). */
  maxKeyAgeMs: number;
}

export const DEFAULT_SOURCE_KEY_OPTIONS: SourceKeyOptions = {
  fetchTimeoutMs: 3_000,
  minRefreshIntervalMs: 60_000,
  maxKeyAgeMs: 60 * 60_000,
};

export interface CurrentKeys {
  keySet: KeySet | null;
  /** Why there are no keys (the last fetch's error), when keySet is null. */
  problem: string | null;
  /** When the keys were fetched (remote sources), epoch ms; 0 for raw keys. */
  fetchedAt: number;
}

interface Entry {
  /** What the entry was built from: config and key versions of the record. */
  configKey: string;
  jwks: JSONWebKeySet | null;
  keySet: KeySet | null;
  fetchedAt: number;
  recordVersion: number;
  lastAttempt: number;
  lastError: string | null;
  inflight: Promise<void> | null;
}

export function isRemoteSource(source: Pick<FederatedSource, 'jwksUrl' | 'oidcDiscoveryUrl'>): boolean {
  return Boolean(source.jwksUrl || source.oidcDiscoveryUrl);
}

function buildKeySet(jwks: JSONWebKeySet | null): KeySet | null {
  if (!jwks || !Array.isArray(jwks.keys) || jwks.keys.length === 0) return null;
  try {
    return createLocalJWKSet(jwks);
  } catch {
    return null;
  }
}

export class SourceKeyCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly collections: Pick<Collections, 'federatedSources'>,
    private readonly options: SourceKeyOptions = DEFAULT_SOURCE_KEY_OPTIONS,
  ) {}

  /** The keys to verify with now; fetches first when a remote source has none yet (and may). */
  async current(source: FederatedSource): Promise<CurrentKeys> {
    const entry = this.entryFor(source);
    if (isRemoteSource(source)) {
      if (!entry.keySet && this.mayRefresh(entry)) await this.refresh(source, entry);
      else if (entry.keySet && Date.now() - entry.fetchedAt > this.options.maxKeyAgeMs && this.mayRefresh(entry)) {
        void this.refresh(source, entry);
      }
    }
    return { keySet: entry.keySet, problem: entry.keySet ? null : (entry.lastError ?? 'the source has no keys'), fetchedAt: entry.fetchedAt };
  }

  /**
   * A JWT named a kid we do not have: refetch, unless this source was fetched less than a minute
   * ago. Returns the new keys, or null when the refetch was not allowed.
   */
  async refreshForUnknownKid(source: FederatedSource): Promise<CurrentKeys | null> {
    if (!isRemoteSource(source)) return null;
    const entry = this.entryFor(source);
    if (!entry.inflight && !this.mayRefresh(entry)) return null;
    await this.refresh(source, entry);
    return { keySet: entry.keySet, problem: entry.keySet ? null : (entry.lastError ?? 'the source has no keys'), fetchedAt: entry.fetchedAt };
  }

  /** Drops what this process holds for a source (admin changed or deleted it). */
  forget(sourceId: string): void {
    this.entries.delete(sourceId);
  }

  private mayRefresh(entry: Entry): boolean {
    const last = Math.max(entry.lastAttempt, entry.fetchedAt);
    return Date.now() - last >= this.options.minRefreshIntervalMs;
  }

  private entryFor(source: FederatedSource): Entry {
    // The issuer decides which discovery documents are accepted: a new one starts afresh too.
    const configKey = `${source.jwksUrl ?? ''}\n${source.oidcDiscoveryUrl ?? ''}\n${source.issuer ?? ''}`;
    const recordVersion = Math.max(source.keysFetchedAt?.getTime() ?? 0, source.updatedAt?.getTime() ?? 0);
    let entry = this.entries.get(source.id);
    if (!entry || entry.configKey !== configKey) {
      entry = {
        configKey, jwks: null, keySet: null, fetchedAt: 0, recordVersion: -1, lastAttempt: 0, lastError: null, inflight: null,
      };
      this.entries.set(source.id, entry);
    }
    // The record changed (admin edit, or another process fetched newer keys): take its keys.
    if (recordVersion > entry.recordVersion) {
      const recordFetchedAt = isRemoteSource(source) ? (source.keysFetchedAt?.getTime() ?? 0) : 0;
      if (!isRemoteSource(source) || recordFetchedAt >= entry.fetchedAt) {
        entry.jwks = source.jwks;
        entry.keySet = buildKeySet(source.jwks);
        entry.fetchedAt = recordFetchedAt;
      }
      entry.recordVersion = recordVersion;
    }
    return entry;
  }

  /** One fetch at a time per source; everyone waiting shares it. */
  private refresh(source: FederatedSource, entry: Entry): Promise<void> {
    if (entry.inflight) return entry.inflight;
    entry.lastAttempt = Date.now();
    entry.inflight = (async () => {
      try {
        const jwks = await fetchJwks(source, this.options.fetchTimeoutMs);
        const now = new Date();
        entry.jwks = jwks;
        entry.keySet = buildKeySet(jwks);
        entry.fetchedAt = now.getTime();
        entry.lastError = entry.keySet ? null : 'the source published no usable keys';
        // Store the keys back so the admin and other processes see them; a newer fetch wins.
        await this.collections.federatedSources
          .updateOne(
            { id: source.id, $or: [{ keysFetchedAt: null }, { keysFetchedAt: { $lt: now } }] },
            { $set: { jwks, keysFetchedAt: now } },
          )
          .catch(() => null);
      } catch (error) {
        // Keep the keys we had: a source that is briefly down should not stop tokens it signed earlier.
        entry.lastError = (error as Error).message;
      } finally {
        entry.inflight = null;
      }
    })();
    return entry.inflight;
  }
}
