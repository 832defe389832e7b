/** The protocol errors (the class is the HTTP layer's, http/oauth-error.ts) and their short factories. */
import { OAuthError } from '../http/oauth-error.js';

export { OAuthError, type OAuthErrorCode } from '../http/oauth-error.js';

export const invalidGrant = (description: string, detail?: string) => new OAuthError('invalid_grant', description, detail);
