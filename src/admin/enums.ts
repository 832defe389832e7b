import { registerEnumType } from 'type-graphql';
import { GRANT_TYPES, SIGNING_ALGORITHMS, SIGNING_KEY_STATUSES, USER_CODE_CHARSETS, USER_TYPES } from '../domain/model.js';

const asEnum = <T extends string>(values: readonly T[]) => Object.fromEntries(values.map((v) => [v, v])) as { [K in T]: K };

export const ClientTypeEnum = asEnum(['CONFIDENTIAL', 'PUBLIC'] as const);
export const GrantTypeEnum = asEnum(GRANT_TYPES);
export const SigningAlgorithmEnum = asEnum(SIGNING_ALGORITHMS);
export const SigningKeyStatusEnum = asEnum(SIGNING_KEY_STATUSES);
export const UserTypeEnum = asEnum(USER_TYPES);
export const UserCodeCharsetEnum = asEnum(USER_CODE_CHARSETS);

registerEnumType(ClientTypeEnum, { name: 'ClientType' });
registerEnumType(GrantTypeEnum, { name: 'GrantType' });
registerEnumType(SigningAlgorithmEnum, { name: 'SigningAlgorithm' });
registerEnumType(SigningKeyStatusEnum, { name: 'SigningKeyStatus', description: "Version 2: a signing key's place in its rotation (OAUTH.md, Signing keys)." });
registerEnumType(UserTypeEnum, { name: 'UserType' });
registerEnumType(UserCodeCharsetEnum, {
  name: 'UserCodeCharset',
  description:
    'User-code alphabets (RFC 8628 §6.1): BASE20 = BCDFGHJKLMNPQRSTVWXZ, NUMERIC = 0123456789, ALPHANUMERIC = 23456789ABCDEFGHJKLMNPQRSTUVWXYZ (no 0/1/I/O lookalikes). Letters are case-insensitive on entry.',
});
