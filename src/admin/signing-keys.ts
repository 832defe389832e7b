import 'reflect-metadata';
import { Arg, Ctx, Field, FieldResolver, ID, Int, Mutation, ObjectType, Resolver, Root } from 'type-graphql';
import { recordConfigChange, type AdminContext } from './context.js';
import { DateTimeScalar } from './scalars.js';
import { SigningAlgorithmEnum, SigningKeyStatusEnum } from './enums.js';
import { ProviderType } from './providers.js';
import type { Provider, SigningAlgorithm, SigningKey, SigningKeyStatus } from '../domain/model.js';
import { statusOf } from '../domain/keys.js';
import { NotFoundError } from '../domain/errors.js';

@ObjectType('SigningKey')
export class SigningKeyType {
  @Field(() => ID) id!: string;
  @Field(() => String) kid!: string;
  @Field(() => SigningAlgorithmEnum) algorithm!: SigningAlgorithm;
  @Field(() => SigningKeyStatusEnum) status!: SigningKeyStatus;
  @Field(() => DateTimeScalar) createdAt!: Date;
  @Field(() => DateTimeScalar, { nullable: true, description: 'When it became CURRENT.' }) activatedAt!: Date | null;
  @Field(() => DateTimeScalar, { nullable: true, description: 'When it stopped signing.' }) deactivatedAt!: Date | null;
  @Field(() => DateTimeScalar, { nullable: true, description: 'When it retires (PREVIOUS) or retired (RETIRED).' }) retiresAt!: Date | null;
}

/** What the admin sees of a key: never the private half, and its status as it is now. */
function view(record: SigningKey, now: number): SigningKeyType {
  return {
    id: record.id, kid: record.id, algorithm: record.algorithm, status: statusOf(record, now), createdAt: record.createdAt,
    activatedAt: record.activatedAt ?? null, deactivatedAt: record.deactivatedAt ?? null, retiresAt: record.retiresAt ?? null,
  };
}

@Resolver(() => ProviderType)
export class ProviderSigningKeysResolver {
  @FieldResolver(() => [SigningKeyType], { description: 'Version 2: NEXT, CURRENT, PREVIOUS and RETIRED keys, newest first.' })
  async signingKeys(@Root() provider: Provider, @Ctx() { services }: AdminContext): Promise<SigningKeyType[]> {
    const now = services.keys.now();
    return (await services.keys.list(provider.id)).map((record) => view(record, now));
  }

  @FieldResolver(() => Int, { nullable: true, description: 'Version 2: automatic rotation period; null rotates only when asked.' })
  keyRotationDays(@Root() provider: Provider): number | null {
    return provider.keyRotationDays ?? null;
  }

  @Mutation(() => ProviderType, { description: 'Version 2: NEXT becomes CURRENT, CURRENT becomes PREVIOUS, a new NEXT is made.' })
  async rotateSigningKeys(@Ctx() ctx: AdminContext, @Arg('providerId', () => ID) providerId: string): Promise<Provider> {
    const provider = await ctx.services.providers.get(providerId);
    if (!provider) throw new NotFoundError('provider', providerId);
    const rotated = await ctx.services.keys.rotate(providerId);
    recordConfigChange(ctx, 'rotateSigningKeys', { providerId, rotated });
    return provider;
  }

  @Mutation(() => SigningKeyType, { description: 'Version 2: removes the key from the JWKS at once; the tokens it signed become inactive.' })
  async retireSigningKey(@Ctx() ctx: AdminContext, @Arg('id', () => ID) id: string): Promise<SigningKeyType> {
    const retired = await ctx.services.keys.retire(id);
    ctx.services.events.record({
      action: 'SIGNING_KEY_RETIRED', requestId: ctx.requestId, username: ctx.admin.username,
      context: { providerId: retired.providerId, kid: retired.id },
    });
    return view(retired, ctx.services.keys.now());
  }
}
