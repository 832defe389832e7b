/**
 * Group commit: the writes made in one turn of the event loop share one SQLite transaction, and
 * so one append to the WAL (and, with TESSERA_DURABILITY=full, one fsync), committed when the
 * turn ends (setImmediate). No outcome is given before its commit: a write's result (or its
 * error) resolves after the COMMIT that made it durable, and so does a read made while writes are
 * pending, since it may have seen them; kill the process at any point and nothing that was
 * answered is lost. A failed COMMIT rejects every write and read of the group.
 *
 * The transaction is IMMEDIATE (it holds the database's write lock from its first write), so the
 * conditional updates inside it stay atomic for other processes on the file too.
 */
import type Database from 'better-sqlite3';

interface Waiting { resolve(): void; reject(error: unknown): void }

export class GroupCommit {
  private waiting: Waiting[] = [];
  private open = false;

  /** `committed` is told of every commit (the checkpointer counts them). */
  constructor(private readonly db: Database.Database, private readonly committed: () => void = () => undefined) {}

  /** Runs `work` (synchronous statements) inside the group's transaction; settles after its commit. */
  write<R>(work: () => R): Promise<R> {
    this.begin();
    try {
      return this.afterCommit(work());
    } catch (error) {
      return this.afterCommit(undefined).then(() => Promise.reject(error));
    }
  }

  /** A read's result: at once, or after the pending commit when writes it may have seen are pending. */
  read<R>(result: R): Promise<R> {
    return this.open ? this.afterCommit(result) : Promise.resolve(result);
  }

  /** Commits the pending writes now (at close). */
  flush(): void {
    this.commit();
  }

  private afterCommit<R>(result: R): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.waiting.push({ resolve: () => resolve(result), reject });
    });
  }

  private begin(): void {
    if (this.open) return;
    this.db.exec('BEGIN IMMEDIATE');
    this.open = true;
    setImmediate(() => this.commit());
  }

  private commit(): void {
    if (!this.open) return;
    const waiting = this.waiting;
    this.waiting = [];
    this.open = false;
    try {
      this.db.exec('COMMIT');
    } catch (error) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      for (const one of waiting) one.reject(error);
      return;
    }
    this.committed();
    for (const one of waiting) one.resolve();
  }
}
