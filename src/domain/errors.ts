/**
 * Errors of the domain services, free of GraphQL and HTTP: the admin API maps them to
 * BAD_USER_INPUT / NOT_FOUND / CONFLICT, the OAuth endpoints to RFC error codes.
 */
export class ValidationError extends Error {
  constructor(readonly field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = 'ValidationError';
  }
}

export class NotFoundError extends Error {
  constructor(readonly entity: string, readonly key: string) {
    super(`${entity} ${key} does not exist`);
    this.name = 'NotFoundError';
  }
}

/** A unique name is taken, or a change would leave something dangling. */
export class DomainConflictError extends Error {
  constructor(readonly field: string, message: string) {
    super(message);
    this.name = 'DomainConflictError';
  }
}
