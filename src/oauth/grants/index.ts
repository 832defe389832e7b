/** The grants the token endpoint answers; one module each. */
import type { Grant } from './grant.js';
import { deviceCodeGrant } from './device-code.js';
import { refreshTokenGrant } from './refresh-token.js';
import { clientCredentialsGrant, passwordGrant } from './client-credentials.js';
import { jwtBearerGrant } from './jwt-bearer.js';
import { tokenExchangeGrant } from './token-exchange.js';

export const GRANTS: readonly Grant[] = [deviceCodeGrant, refreshTokenGrant, clientCredentialsGrant, passwordGrant, jwtBearerGrant, tokenExchangeGrant];
