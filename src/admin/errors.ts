/**
 * Maps domain errors to the contract's GraphQL error codes. Anything unexpected becomes a
 * generic INTERNAL_SERVER_ERROR: no driver error or stack trace ever reaches a response.
 */
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { unwrapResolverError } from '@apollo/server/errors';
import type { Logger } from 'pino';
import { DomainConflictError, NotFoundError, ValidationError } from '../domain/errors.js';
import { StoreUnavailableError } from '../store/errors.js';

export function formatAdminError(logger: Logger) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const original = unwrapResolverError(error);
    const base = { message: formatted.message, locations: formatted.locations, path: formatted.path };
    if (original instanceof ValidationError) {
      return { ...base, message: original.message, extensions: { code: 'BAD_USER_INPUT', field: original.field } };
    }
    if (original instanceof NotFoundError) return { ...base, message: original.message, extensions: { code: 'NOT_FOUND' } };
    if (original instanceof DomainConflictError) {
      return { ...base, message: original.message, extensions: { code: 'CONFLICT', field: original.field } };
    }
    if (original instanceof StoreUnavailableError) {
      // The store stopped answering mid-request (the guard's check may have come from a cache).
      logger.warn({ err: original }, 'admin API: store unavailable');
      return { ...base, message: 'The store is not answering; try again shortly', extensions: { code: 'SERVICE_UNAVAILABLE' } };
    }
    const code = formatted.extensions?.code;
    if (original instanceof GraphQLError || (typeof code === 'string' && code !== 'INTERNAL_SERVER_ERROR')) {
      // Errors of the request itself (syntax, validation, bad variables): safe to show.
      return { message: formatted.message, locations: formatted.locations, path: formatted.path, extensions: { code: code ?? 'BAD_REQUEST' } };
    }
    logger.error({ err: original }, 'admin API error');
    return { ...base, message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } };
  };
}

