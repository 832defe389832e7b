import 'reflect-metadata';
import { Arg, Ctx, Field, FieldResolver, ID, InputType, Int, Mutation, ObjectType, Query, Resolver, Root } from 'type-graphql';
import { recordConfigChange, setFields, type AdminContext } from './context.js';
import { DateTimeScalar, JSONScalar } from './scalars.js';
import { UserTypeEnum } from './enums.js';
import { connection, pageRequest, PageInfoType } from './pagination.js';
import type { User, UserType } from '../domain/model.js';
import type { UserListFilter } from '../domain/users.js';
import { ValidationError } from '../domain/errors.js';

@ObjectType('User')
export class UserObject {
  @Field(() => ID) id!: string;
  @Field(() => String) username!: string;
  @Field(() => String, { nullable: true }) name!: string | null;
  @Field(() => String, { nullable: true }) email!: string | null;
  @Field(() => UserTypeEnum) type!: UserType;
  @Field(() => Boolean) isActive!: boolean;
  @Field(() => Boolean) isAdmin!: boolean;
  @Field(() => JSONScalar) attributes!: Record<string, unknown>;
  @Field(() => DateTimeScalar, { nullable: true, description: 'Generated service accounts expire with the JWT that created them.' })
  expiresAt!: Date | null;
  @Field(() => DateTimeScalar) createdAt!: Date;
}

@ObjectType('UserEdge')
export class UserEdgeObject {
  @Field(() => UserObject) node!: User;
  @Field(() => String) cursor!: string;
}

@ObjectType('UserConnection')
export class UserConnectionObject {
  @Field(() => [UserEdgeObject]) edges!: UserEdgeObject[];
  @Field(() => PageInfoType) pageInfo!: PageInfoType;
  /** The listing's filter, so totalCount is counted only when a query asks for it. */
  filter!: UserListFilter;
  /** Known already when the page held every match. */
  knownTotal!: number | null;
}

@InputType('UserFilter')
export class UserFilterInput {
  @Field(() => UserTypeEnum, { nullable: true }) type?: UserType | null;
  @Field(() => String, { nullable: true, description: 'Substring of username, name or email.' }) search?: string | null;
}

@InputType('CreateUserInput')
export class CreateUserInput {
  @Field(() => String) username!: string;
  @Field(() => String, { nullable: true }) name?: string | null;
  @Field(() => String, { nullable: true }) email?: string | null;
  @Field(() => String, { nullable: true }) password?: string | null;
  @Field(() => Boolean, { nullable: true }) isAdmin?: boolean | null;
  @Field(() => JSONScalar, { nullable: true }) attributes?: Record<string, unknown> | null;
  @Field(() => UserTypeEnum, {
    nullable: true,
    description: 'INTERNAL (default) or EXTERNAL; service accounts are made by createServiceAccount, generated ones by client_credentials.',
  })
  type?: UserType | null;
}

@InputType('UpdateUserInput')
export class UpdateUserInput {
  @Field(() => String, { nullable: true }) name?: string | null;
  @Field(() => String, { nullable: true }) email?: string | null;
  @Field(() => Boolean, { nullable: true }) isActive?: boolean | null;
  @Field(() => Boolean, { nullable: true }) isAdmin?: boolean | null;
  @Field(() => JSONScalar, { nullable: true }) attributes?: Record<string, unknown> | null;
}

@InputType('CreateServiceAccountInput')
export class CreateServiceAccountInput {
  @Field(() => String) username!: string;
  @Field(() => String, { nullable: true }) name?: string | null;
  @Field(() => DateTimeScalar, { nullable: true }) expiresAt?: Date | null;
  @Field(() => JSONScalar, { nullable: true }) attributes?: Record<string, unknown> | null;
}

@Resolver(() => UserObject)
export class UserResolver {
  @Query(() => UserConnectionObject, { description: 'Newest first.' })
  async users(
    @Ctx() { services }: AdminContext,
    @Arg('filter', () => UserFilterInput, { nullable: true }) filter?: UserFilterInput | null,
    @Arg('first', () => Int, { nullable: true }) first?: number | null,
    @Arg('after', () => String, { nullable: true }) after?: string | null,
  ): Promise<UserConnectionObject> {
    const request = pageRequest(first, after);
    const where: UserListFilter = { type: filter?.type ?? null, search: filter?.search ?? null };
    const page = await services.users.listPage(where, request);
    return { ...connection(page), filter: where, knownTotal: page.totalCount ?? null };
  }

  @Query(() => UserObject, { nullable: true })
  async user(
    @Ctx() { services }: AdminContext,
    @Arg('id', () => ID, { nullable: true }) id?: string | null,
    @Arg('username', () => String, { nullable: true }) username?: string | null,
  ): Promise<User | null> {
    // Uncached (get() is cached briefly for the token endpoint): admins see what the store holds.
    if (id) return (await services.users.getMany([id]))[0] ?? null;
    if (username) return services.users.getByUsername(username);
    throw new ValidationError('id', 'give id or username');
  }

  @Mutation(() => UserObject)
  async createUser(@Ctx() ctx: AdminContext, @Arg('input', () => CreateUserInput) input: CreateUserInput): Promise<User> {
    const type = input.type ?? 'INTERNAL';
    if (type !== 'INTERNAL' && type !== 'EXTERNAL') {
      throw new ValidationError('type', 'must be INTERNAL or EXTERNAL; use createServiceAccount for service accounts');
    }
    const user = await ctx.services.users.create({ ...input, type });
    recordConfigChange(ctx, 'createUser', { id: user.id, username: user.username, type, isAdmin: user.isAdmin });
    return user;
  }

  @Mutation(() => UserObject)
  async updateUser(@Ctx() ctx: AdminContext, @Arg('id', () => ID) id: string, @Arg('input', () => UpdateUserInput) input: UpdateUserInput): Promise<User> {
    const user = await ctx.services.users.update(id, input);
    recordConfigChange(ctx, 'updateUser', { id, username: user.username, fields: setFields(input) });
    return user;
  }

  @Mutation(() => Boolean, { description: 'Sets the login password (stored as an argon2id hash).' })
  async setUserPassword(@Ctx() ctx: AdminContext, @Arg('id', () => ID) id: string, @Arg('password', () => String) password: string): Promise<boolean> {
    await ctx.services.users.setPassword(id, password);
    recordConfigChange(ctx, 'setUserPassword', { id });
    return true;
  }

  @Mutation(() => Boolean, { description: "Deletes the user and revokes what was issued to it: its app passwords and refresh tokens." })
  async deleteUser(@Ctx() ctx: AdminContext, @Arg('id', () => ID) id: string): Promise<boolean> {
    const user = await ctx.services.users.get(id);
    await ctx.services.users.delete(id);
    recordConfigChange(ctx, 'deleteUser', { id, username: user?.username ?? null });
    return true;
  }

  @Mutation(() => UserObject)
  async createServiceAccount(
    @Ctx() ctx: AdminContext,
    @Arg('input', () => CreateServiceAccountInput) input: CreateServiceAccountInput,
  ): Promise<User> {
    const user = await ctx.services.users.createServiceAccount(input);
    recordConfigChange(ctx, 'createServiceAccount', { id: user.id, username: user.username });
    return user;
  }
}

@Resolver(() => UserConnectionObject)
export class UserConnectionResolver {
  @FieldResolver(() => Int, { description: 'All users that match the filter, on every page.' })
  async totalCount(@Root() connection: UserConnectionObject, @Ctx() { services }: AdminContext): Promise<number> {
    return connection.knownTotal ?? services.users.count(connection.filter);
  }
}
