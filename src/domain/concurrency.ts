/**
 * A bound on concurrent expensive work (argon2 verifications: ~100 ms of a core and 64 MiB each).
 * At most `maxActive` tasks run; at most `maxWaiting` more wait for a slot; anything beyond is
 * refused at once with OverloadedError, so a burst of bogus sign-ins costs the caller a fast
 * refusal instead of making every later sign-in queue behind it.
 */
export class OverloadedError extends Error {
  constructor() {
    super('too many password verifications in progress');
    this.name = 'OverloadedError';
  }
}

export class ConcurrencyGate {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly maxActive: number, private readonly maxWaiting: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active < this.maxActive) {
      this.active += 1;
    } else {
      if (this.waiting.length >= this.maxWaiting) throw new OverloadedError();
      // The slot is handed over by the task that finishes (active stays the same).
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active -= 1;
    }
  }
}
