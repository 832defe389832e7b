import { DateTimeResolver, JSONResolver } from 'graphql-scalars';

/** ISO-8601 strings on the wire, Date inside. */
export const DateTimeScalar = DateTimeResolver;
/** Any JSON value. */
export const JSONScalar = JSONResolver;
