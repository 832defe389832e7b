/** A unique key is taken. Adapters translate their driver's duplicate-key error into this. */
export class ConflictError extends Error {
  constructor(readonly collection: string, readonly field: string) {
    super(`${collection}: ${field} is already taken`);
    this.name = 'ConflictError';
  }
}

/** The store could not be reached or failed; never shown to clients beyond a generic 503/500. */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}
