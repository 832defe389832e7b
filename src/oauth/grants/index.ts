/** The grants the token endpoint answers; one module each. */
import type { Grant } from './grant.js';

export const GRANTS: readonly Grant[] = [];
