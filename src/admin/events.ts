import 'reflect-metadata';
import { Arg, Ctx, Field, ID, InputType, Int, ObjectType, Query, Resolver } from 'type-graphql';
import type { AdminContext } from './context.js';
import { DateTimeScalar, JSONScalar } from './scalars.js';
import { connection, pageRequest, PageInfoType } from './pagination.js';
import type { AuditEvent } from '../domain/model.js';

@ObjectType('Event')
export class EventObject {
  @Field(() => ID) id!: string;
  @Field(() => String, { description: 'For example LOGIN, LOGIN_FAILED, TOKEN_ISSUED, DEVICE_AUTHORIZED, DEVICE_DENIED, CONFIG_CHANGED.' })
  action!: string;
  @Field(() => String, { nullable: true, description: 'The request_id of the HTTP request that caused it, as returned in OAuth error bodies.' })
  requestId!: string | null;
  @Field(() => String, { nullable: true }) clientId!: string | null;
  @Field(() => String, { nullable: true }) username!: string | null;
  @Field(() => JSONScalar) context!: Record<string, unknown>;
  @Field(() => DateTimeScalar) createdAt!: Date;
}

@ObjectType('EventEdge')
export class EventEdgeObject {
  @Field(() => EventObject) node!: AuditEvent;
  @Field(() => String) cursor!: string;
}

@ObjectType('EventConnection')
export class EventConnectionObject {
  @Field(() => [EventEdgeObject]) edges!: EventEdgeObject[];
  @Field(() => PageInfoType) pageInfo!: PageInfoType;
}

@InputType('EventFilter')
export class EventFilterInput {
  @Field(() => String, { nullable: true }) requestId?: string | null;
  @Field(() => String, { nullable: true }) action?: string | null;
  @Field(() => String, { nullable: true }) clientId?: string | null;
  @Field(() => String, { nullable: true }) username?: string | null;
}

@Resolver(() => EventObject)
export class EventResolver {
  @Query(() => EventConnectionObject, { description: 'Newest first.' })
  async events(
    @Ctx() { services }: AdminContext,
    @Arg('filter', () => EventFilterInput, { nullable: true }) filter?: EventFilterInput | null,
    @Arg('first', () => Int, { nullable: true }) first?: number | null,
    @Arg('after', () => String, { nullable: true }) after?: string | null,
  ): Promise<EventConnectionObject> {
    return connection(await services.eventQuery.listPage(filter ?? {}, pageRequest(first, after)));
  }
}
