/**
 * A copy of a short string that holds on to nothing else. A key cut from a longer string (a
 * client_id cut to 128 characters for an event) is, in V8, a slice that keeps the whole original
 * alive: cached, 1,500 of them pinned 12 MB of 8 KB client_ids.
 */
function detached(key: string): string {
  return Buffer.from(key, 'utf16le').toString('utf16le');
}

/**
 * A short-lived process cache for records read on hot paths (clients, providers). Staleness across
 * processes is bounded by the TTL; on this process, admin changes invalidate entries at once.
 * Bounded whatever callers send: at most `maxEntries` entries, keys longer than `maxKeyLength` are
 * never kept (no id, slug, client_id or hash is that long, so such a key can only miss), and every
 * write first drops the entries that have expired, so a burst of unknown keys is gone a TTL later.
 */
export class TtlCache<V> {
  /** In order of expiry: every entry lives ttlMs, and a rewritten key moves to the end. */
  private readonly entries = new Map<string, { value: V; expires: number }>();
  /** Counts invalidations: a load that began before one must not cache what it read (it may predate the change). */
  private generation = 0;

  constructor(private readonly ttlMs: number, private readonly maxEntries = 10_000, private readonly maxKeyLength = 256) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expires <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key: string, value: V): void {
    if (key.length > this.maxKeyLength) return;
    const now = Date.now();
    this.entries.delete(key);
    this.sweep(now);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(detached(key), { value, expires: now + this.ttlMs });
  }

  /** Drops expired entries from the front (the oldest): each entry is visited once after it expires. */
  private sweep(now: number): void {
    for (const [key, entry] of this.entries) {
      if (entry.expires > now) return;
      this.entries.delete(key);
    }
  }

  delete(key: string): void {
    this.generation++;
    this.entries.delete(key);
  }

  clear(): void {
    this.generation++;
    this.entries.clear();
  }

  /** Reads through: a miss calls `load`; null results are cached too, so unknown ids stay cheap. */
  getOrLoad(key: string, load: () => Promise<V>): Promise<V> {
    const hit = this.get(key);
    // A settled promise rather than an async function: hits are the hot path, and this is one allocation fewer.
    if (hit !== undefined) return Promise.resolve(hit);
    const generation = this.generation;
    let loading: Promise<V>;
    try {
      loading = load();
    } catch (error) {
      return Promise.reject(error);
    }
    return loading.then((value) => {
      if (generation === this.generation) this.set(key, value);
      return value;
    });
  }
}

/**
 * The results of a pure function of a string, remembered per input: for values worked out per
 * request from a handful of inputs (alphabets, base URLs, account names). Bounded: when full it
 * forgets everything, which costs only recomputation.
 */
export class Memo<V> {
  private readonly values = new Map<string, V>();

  constructor(private readonly maxEntries: number) {}

  get(key: string, compute: () => V): V {
    let value = this.values.get(key);
    if (value === undefined && !this.values.has(key)) {
      value = compute();
      if (this.values.size >= this.maxEntries) this.values.clear();
      this.values.set(key, value);
    }
    return value as V;
  }
}
