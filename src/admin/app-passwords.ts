import 'reflect-metadata';
import { Arg, Ctx, Field, FieldResolver, ID, InputType, Mutation, ObjectType, Resolver, Root } from 'type-graphql';
import { recordConfigChange, type AdminContext } from './context.js';
import { DateTimeScalar } from './scalars.js';
import { UserObject } from './users.js';
import type { AppPassword, User } from '../domain/model.js';

@ObjectType('AppPassword')
export class AppPasswordObject {
  @Field(() => ID) id!: string;
  @Field(() => String, { nullable: true }) description!: string | null;
  @Field(() => DateTimeScalar, { nullable: true }) expiresAt!: Date | null;
  @Field(() => DateTimeScalar, { nullable: true }) lastUsedAt!: Date | null;
  @Field(() => DateTimeScalar) createdAt!: Date;
}

@ObjectType('AppPasswordWithSecret')
export class AppPasswordWithSecretObject {
  @Field(() => AppPasswordObject) appPassword!: AppPassword;
  @Field(() => String, { description: 'Shown once.' }) secret!: string;
}

@InputType('CreateAppPasswordInput')
export class CreateAppPasswordInput {
  @Field(() => ID) userId!: string;
  @Field(() => String, { nullable: true }) description?: string | null;
  @Field(() => DateTimeScalar, { nullable: true }) expiresAt?: Date | null;
}

@Resolver(() => AppPasswordObject)
export class AppPasswordResolver {
  @FieldResolver(() => UserObject)
  async user(@Root() appPassword: AppPassword, @Ctx() { loaders }: AdminContext): Promise<User> {
    const user = await loaders.user.load(appPassword.userId);
    // Deleting a user deletes its app passwords, so an app password always has its user.
    if (!user) throw new Error(`app password ${appPassword.id} has no user ${appPassword.userId}`);
    return user;
  }

  @Mutation(() => AppPasswordWithSecretObject, { description: 'The secret is returned once and stored as a SHA-256 hash.' })
  async createAppPassword(
    @Ctx() ctx: AdminContext,
    @Arg('input', () => CreateAppPasswordInput) input: CreateAppPasswordInput,
  ): Promise<{ appPassword: AppPassword; secret: string }> {
    const created = await ctx.services.appPasswords.create(input);
    recordConfigChange(ctx, 'createAppPassword', { id: created.appPassword.id, userId: input.userId });
    return created;
  }

  @Mutation(() => Boolean)
  async revokeAppPassword(@Ctx() ctx: AdminContext, @Arg('id', () => ID) id: string): Promise<boolean> {
    const appPassword = await ctx.services.appPasswords.get(id);
    await ctx.services.appPasswords.revoke(id);
    recordConfigChange(ctx, 'revokeAppPassword', { id, userId: appPassword?.userId ?? null });
    return true;
  }
}

/** User.appPasswords, batched per request. */
@Resolver(() => UserObject)
export class UserAppPasswordsResolver {
  @FieldResolver(() => [AppPasswordObject])
  appPasswords(@Root() user: User, @Ctx() { loaders }: AdminContext): Promise<AppPassword[]> {
    return loaders.appPasswordsByUser.load(user.id);
  }
}
