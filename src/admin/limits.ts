/**
 * Abuse limits for /graphql, as validation rules: a query is refused before anything runs when it
 * nests too deep or asks for too much. Cost counts every field once per object it could be
 * resolved on: a connection with `first` multiplies what is below it by `first` (500 when it is a
 * variable, the most a page holds) and its `edges` by nothing more; other lists multiply by LIST_FACTOR. Introspection fields (__schema,
 * __type) are left out: only admins reach this point, and the standard introspection query nests
 * deeper than any real query needs to.
 */
import {
  GraphQLError, Kind, getNamedType, isListType, getNullableType,
  type ASTVisitor, type FieldNode, type FragmentDefinitionNode, type GraphQLField, type GraphQLOutputType,
  type SelectionSetNode, type ValidationContext, type ValidationRule, type GraphQLCompositeType, isCompositeType,
  isObjectType, isInterfaceType,
} from 'graphql';
import { PAGE_SIZE } from '../domain/pagination.js';

export const MAX_DEPTH = 10;
export const MAX_COST = 20_000;
/** What a list without `first` (providers, clients, app passwords) is assumed to hold. */
const LIST_FACTOR = 10;

interface Walker {
  fragments: Map<string, FragmentDefinitionNode>;
  context: ValidationContext;
  /** Each fragment is measured once (a fragment spread twice in each of 30 nested fragments must not take 2^30 steps). */
  measured: Map<string, Measure | 'in progress'>;
}

interface Measure {
  depth: number;
  cost: number;
}

function fieldDefinition(parent: GraphQLCompositeType | null, name: string): GraphQLField<unknown, unknown> | null {
  if (!parent || !(isObjectType(parent) || isInterfaceType(parent))) return null;
  return parent.getFields()[name] ?? null;
}

function pageSize(node: FieldNode): number | null {
  const first = node.arguments?.find((a) => a.name.value === 'first');
  if (!first) return null;
  return first.value.kind === Kind.INT ? Math.max(1, Math.min(Number(first.value.value), PAGE_SIZE.max)) : PAGE_SIZE.max;
}

/** How many times what is below a field may be resolved. `inPage`: the field sits right under a paged connection, whose `first` already counted its edges. */
function listFactor(node: FieldNode, type: GraphQLOutputType | undefined, inPage: boolean): number {
  const first = pageSize(node);
  if (first !== null) return first;
  if (inPage && node.name.value === 'edges') return 1;
  if (type && isListType(getNullableType(type))) return LIST_FACTOR;
  return 1;
}

function measureFragment(w: Walker, name: string): Measure {
  const known = w.measured.get(name);
  // A cycle is reported by graphql's own NoFragmentCyclesRule; here it just stops.
  if (known === 'in progress') return { depth: 0, cost: 0 };
  if (known) return known;
  const fragment = w.fragments.get(name);
  if (!fragment) return { depth: 0, cost: 0 };
  w.measured.set(name, 'in progress');
  const type = w.context.getSchema().getType(fragment.typeCondition.name.value);
  const result = measure(w, fragment.selectionSet, type && isCompositeType(type) ? type : null);
  w.measured.set(name, result);
  return result;
}

/** Depth and cost of a selection set, following fragments. */
function measure(w: Walker, set: SelectionSetNode, parent: GraphQLCompositeType | null, inPage = false): Measure {
  let depth = 0;
  let cost = 0;
  for (const selection of set.selections) {
    if (selection.kind === Kind.FIELD) {
      if (selection.name.value.startsWith('__')) continue;
      const def = fieldDefinition(parent, selection.name.value);
      const named = def ? getNamedType(def.type) : null;
      const childParent = named && isCompositeType(named) ? named : null;
      const below = selection.selectionSet ? measure(w, selection.selectionSet, childParent, pageSize(selection) !== null) : { depth: 0, cost: 0 };
      const factor = listFactor(selection, def?.type, inPage);
      depth = Math.max(depth, 1 + below.depth);
      cost += 1 + factor * below.cost;
    } else {
      let m: Measure;
      if (selection.kind === Kind.INLINE_FRAGMENT) {
        const typeName = selection.typeCondition?.name.value;
        const conditionType = typeName ? w.context.getSchema().getType(typeName) : null;
        m = measure(w, selection.selectionSet, conditionType && isCompositeType(conditionType) ? conditionType : parent, inPage);
      } else {
        m = measureFragment(w, selection.name.value);
      }
      depth = Math.max(depth, m.depth);
      cost += m.cost;
    }
  }
  return { depth, cost };
}

export function queryLimits(maxDepth = MAX_DEPTH, maxCost = MAX_COST): ValidationRule {
  return (context: ValidationContext): ASTVisitor => {
    const document = context.getDocument();
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
    return {
      OperationDefinition(operation) {
        const schema = context.getSchema();
        const root = operation.operation === 'mutation' ? schema.getMutationType() : operation.operation === 'subscription' ? schema.getSubscriptionType() : schema.getQueryType();
        const { depth, cost } = measure({ fragments, context, measured: new Map() }, operation.selectionSet, root ?? null);
        const name = operation.name ? `'${operation.name.value}'` : 'the operation';
        if (depth > maxDepth) {
          context.reportError(new GraphQLError(`${name} nests ${depth} levels deep; at most ${maxDepth} are allowed`, { nodes: [operation], extensions: { code: 'QUERY_TOO_DEEP' } }));
        }
        if (cost > maxCost) {
          context.reportError(new GraphQLError(`${name} costs ${cost}; at most ${maxCost} is allowed (ask for fewer fields or smaller pages)`, { nodes: [operation], extensions: { code: 'QUERY_TOO_COSTLY' } }));
        }
      },
    };
  };
}
