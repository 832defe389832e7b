/**
 * The CEL engine behind policies and mappings (@marcbachmann/cel-js; nothing is ever run through
 * eval or vm). An expression is parsed and type-checked once and kept in an LRU cache keyed by its
 * text, so the token endpoint only evaluates.
 *
 * Bounds, so that an admin's expression cannot stall the token endpoint:
 * - at compile time: at most MAX_EXPRESSION_BYTES of UTF-8, the library's structural limits (AST
 *   nodes, nesting depth, literal sizes), and no `matches()` (JavaScript regular expressions
 *   backtrack without bound; use startsWith / endsWith / contains);
 * - at evaluation time: every node the evaluator runs counts as a step (comprehension iterations
 *   included), every list, string, bytes or map it produces counts its size (a list built by `+`
 *   counts its elements' sizes too: it copies references without reading them); past MAX_STEPS
 *   steps, MAX_VALUE_UNITS units, one value over MAX_VALUE_SIZE or MAX_EVALUATION_MS the evaluation
 *   is stopped with EvaluationLimitError. The library has no such limit of its own; the count hooks
 *   the evaluator's `run` (the single dispatch every child node goes through, the hook the library
 *   hands to custom macros).
 * - every builtin costs time linear in its arguments, each at most MAX_VALUE_SIZE: the two that do
 *   not in the library (duration(), join()) are replaced (builtins.ts). So a step costs at most a
 *   few ms, and the clock is read every CLOCK_EVERY_STEPS steps and after every step that read or
 *   built CLOCK_EVERY_UNITS units: the deadline holds within about one step.
 * - the input: JSON only, at most MAX_CONTEXT_DEPTH levels deep.
 */
import { Environment, EvaluationError, Optional, ParseError, TypeError as CelTypeError, type ParseResult } from '@marcbachmann/cel-js';
import { PUBLIC_NAMES, RENAMED_CALLS, registerBoundedBuiltins } from './builtins.js';

export const MAX_EXPRESSION_BYTES = 4 * 1024;
export const MAX_STEPS = 50_000;
export const MAX_VALUE_UNITS = 1_000_000;
/** The largest single string, bytes or list (characters, bytes, elements) an expression may read or build. */
export const MAX_VALUE_SIZE = 100_000;
export const MAX_EVALUATION_MS = 25;
export const MAX_CONTEXT_DEPTH = 64;
const COMPILE_CACHE_SIZE = 1_000;
/** How often (in steps) the clock is read: often enough to stop within a few ms of the deadline. */
const CLOCK_EVERY_STEPS = 64;
/** ... and after a step that read or built this many units (large values cost time in one step). */
const CLOCK_EVERY_UNITS = 8_192;

/** What an expression is for: decides its variables and the type it must return. */
export type ExpressionKind = 'policy' | 'scopeMapping' | 'sourceMapping';

const KIND_SPECS: Record<ExpressionKind, { variables: string[]; returns: 'bool' | 'map'; label: string }> = {
  policy: { variables: ['request'], returns: 'bool', label: 'a policy' },
  scopeMapping: { variables: ['request'], returns: 'map', label: 'a scope mapping' },
  sourceMapping: { variables: ['claims', 'source'], returns: 'map', label: 'a source property mapping' },
};

/** The expression does not compile: syntax, unknown variable, wrong type. Carries the position. */
export class ExpressionError extends Error {
  constructor(readonly summary: string, readonly line: number | null, readonly column: number | null) {
    super(line === null ? summary : `${summary} at line ${line}, column ${column}`);
    this.name = 'ExpressionError';
  }
}

/** The expression failed while running (a missing key, a wrong runtime type, …). */
export class ExpressionEvaluationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExpressionEvaluationError';
  }
}

/** The evaluation crossed one of the bounds above and was stopped. */
export class EvaluationLimitError extends ExpressionEvaluationError {
  constructor(message: string) {
    super(message);
    this.name = 'EvaluationLimitError';
  }
}

export interface CompiledExpression {
  kind: ExpressionKind;
  source: string;
  /** The type the checker inferred (`bool`, `dyn`, `map<string, dyn>`, …). */
  type: string;
  program: ParseResult;
}

export interface EvaluationStats {
  steps: number;
  units: number;
}

/** Budget of the evaluation running now; evaluation is synchronous, so one slot is enough. */
interface Budget {
  steps: number;
  units: number;
  deadline: number;
  /** Units counted when the clock was last read. */
  unitsAtClock: number;
  /** Set once a bound is crossed: CEL's `||`, `&&` and exists() absorb errors, so the result is refused afterwards too. */
  exceeded: string | null;
}

/** 1-based line and column of a character offset. */
function position(source: string, offset: number): { line: number; column: number } {
  const before = source.slice(0, Math.max(0, Math.min(offset, source.length)));
  const lines = before.split('\n');
  return { line: lines.length, column: lines[lines.length - 1]!.length + 1 };
}

function celError(error: unknown, source: string): ExpressionError {
  if (error instanceof ParseError || error instanceof CelTypeError) {
    const at = error.range ? position(source, error.range.start) : null;
    const kind = error instanceof ParseError ? 'syntax error' : 'type error';
    return new ExpressionError(`${kind}: ${publicNames(error.summary)}`, at?.line ?? null, at?.column ?? null);
  }
  if (error instanceof ExpressionError) return error;
  return new ExpressionError(error instanceof Error ? error.message : String(error), null, null);
}

/** Node kinds of the library's AST we look into: each has `op` and `args`. */
interface AstLike {
  op: string;
  args: unknown;
  range?: { start: number };
}

function isAst(value: unknown): value is AstLike {
  return typeof value === 'object' && value !== null && 'op' in value && 'args' in value;
}

const FORBIDDEN_CALLS: Record<string, string> = {
  matches: 'matches() is not allowed: regular expressions can backtrack without bound; use startsWith, endsWith or contains',
};

/** Error messages name the builtins as the admin wrote them, not their internal replacements. */
function publicNames(message: string): string {
  return message.replace(/\btessera_(duration|join)\b/g, (name) => PUBLIC_NAMES[name] ?? name);
}

/** Why a call is refused, or null. */
function forbiddenCall(name: string): string | null {
  if (name.startsWith('tessera_')) return `${name}() is internal`;
  return FORBIDDEN_CALLS[name] ?? null;
}

/**
 * Walks the parsed tree (iteratively), refuses the calls Tessera does not allow and points the
 * builtins Tessera replaces (builtins.ts) at their replacements; runs before type-checking, which
 * resolves each call by its name.
 */
function prepareTree(ast: unknown, source: string): void {
  const pending: unknown[] = [ast];
  while (pending.length > 0) {
    const node = pending.pop();
    if (Array.isArray(node)) {
      pending.push(...node);
      continue;
    }
    if (!isAst(node)) continue;
    if ((node.op === 'call' || node.op === 'rcall') && Array.isArray(node.args)) {
      const name = String(node.args[0]);
      const reason = forbiddenCall(name);
      if (reason) {
        const at = position(source, node.range?.start ?? 0);
        throw new ExpressionError(reason, at.line, at.column);
      }
      const callArgs: unknown = node.args[node.op === 'call' ? 1 : 2];
      const replacement = RENAMED_CALLS[`${node.op}:${name}/${Array.isArray(callArgs) ? callArgs.length : -1}`];
      if (replacement) node.args[0] = replacement;
    }
    if (Array.isArray(node.args)) pending.push(...node.args);
    else if (isAst(node.args)) pending.push(node.args);
  }
}

/** JSON (and Dates) → CEL values: whole numbers become CEL ints (BigInt), so `x == 1` and `x + 1` work. */
export function toCel(value: unknown, depth = 0): unknown {
  if (depth > MAX_CONTEXT_DEPTH) throw new EvaluationLimitError(`the input is nested deeper than ${MAX_CONTEXT_DEPTH} levels`);
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'bigint':
      return value;
    case 'number':
      return Number.isSafeInteger(value) ? BigInt(value) : value;
    case 'object': {
      if (value instanceof Date) return value;
      if (Array.isArray(value)) return value.map((item) => toCel(item, depth + 1));
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(value)) if (item !== undefined) out[key] = toCel(item, depth + 1);
      return out;
    }
    default:
      return null;
  }
}

/** CEL values → JSON: ints back to numbers (strings when too large), absent optionals dropped. */
export function fromCel(value: unknown, depth = 0): unknown {
  if (depth > MAX_CONTEXT_DEPTH) throw new EvaluationLimitError(`the result is nested deeper than ${MAX_CONTEXT_DEPTH} levels`);
  if (value === null || value === undefined) return null;
  if (value instanceof Optional) return value.hasValue() ? fromCel(value.value(), depth + 1) : undefined;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'bigint':
      return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
    case 'object': {
      if (value instanceof Date) return value.toISOString();
      if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
      if (Array.isArray(value)) return value.map((item) => fromCel(item, depth + 1) ?? null);
      const entries = value instanceof Map ? [...value.entries()] : Object.entries(value);
      const out: Record<string, unknown> = {};
      for (const [key, item] of entries) {
        const converted = fromCel(item, depth + 1);
        if (converted !== undefined) out[String(key)] = converted;
      }
      // Other library values (durations, unsigned ints, types) have no own enumerable fields.
      return entries.length === 0 && !(value instanceof Map) && Object.getPrototypeOf(value) !== Object.prototype ? String(value) : out;
    }
    default:
      return String(value);
  }
}

/**
 * Size of a list with everything it holds (strings, bytes, nested lists), counted up to `limit`:
 * `+` copies references, so `l + l` doubles what join() or `in` will read without reading it.
 */
function weightOf(list: unknown[], limit: number): number {
  let weight = 0;
  const pending: unknown[][] = [list];
  while (pending.length > 0 && weight <= limit) {
    const items = pending.pop()!;
    weight += items.length;
    for (const item of items) {
      if (Array.isArray(item)) pending.push(item);
      else weight += sizeOf(item);
      if (weight > limit) break;
    }
  }
  return weight;
}

function sizeOf(value: unknown): number {
  if (typeof value === 'string') return value.length;
  if (typeof value !== 'object' || value === null) return 0;
  if (Array.isArray(value)) return value.length;
  if (value instanceof Uint8Array) return value.length;
  if (value instanceof Map) return value.size;
  return 0;
}

type Run = (this: unknown, ast: unknown, ctx: unknown) => unknown;

export class PolicyEngine {
  private readonly environments: Record<ExpressionKind, Environment>;
  private readonly cache = new Map<string, CompiledExpression>();
  private budget: Budget | null = null;
  /** Compilations so far (cache misses); the unit tests read it. */
  compilations = 0;

  constructor() {
    this.environments = {
      policy: this.createEnvironment('policy'),
      scopeMapping: this.createEnvironment('scopeMapping'),
      sourceMapping: this.createEnvironment('sourceMapping'),
    };
  }

  /**
   * Parses and type-checks once; later calls with the same text are served from the cache.
   * Throws ExpressionError (with line and column) when it does not compile.
   */
  compile(kind: ExpressionKind, source: string): CompiledExpression {
    const key = `${kind}\u0000${source}`;
    const hit = this.cache.get(key);
    if (hit) {
      // Least recently used goes first: re-insert on every hit.
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    const compiled = this.compileUncached(kind, source);
    if (this.cache.size >= COMPILE_CACHE_SIZE) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(key, compiled);
    return compiled;
  }

  /** Evaluates with the bounds above; variables are JSON (converted to CEL values here). */
  evaluate(compiled: CompiledExpression, variables: Record<string, unknown>, stats?: EvaluationStats): unknown {
    const context: Record<string, unknown> = {};
    for (const name of KIND_SPECS[compiled.kind].variables) context[name] = toCel(variables[name] ?? null);
    const budget: Budget = { steps: 0, units: 0, deadline: performance.now() + MAX_EVALUATION_MS, unitsAtClock: 0, exceeded: null };
    this.budget = budget;
    let raw: unknown;
    try {
      raw = compiled.program(context);
    } catch (error) {
      if (budget.exceeded) throw new EvaluationLimitError(budget.exceeded);
      if (error instanceof ExpressionEvaluationError) throw error;
      if (error instanceof EvaluationError) {
        const at = error.range ? position(compiled.source, error.range.start) : null;
        throw new ExpressionEvaluationError(at ? `${error.summary} at line ${at.line}, column ${at.column}` : error.summary);
      }
      // The library throws its own errors only; anything else (stack overflow, out of range) is still the expression's fault.
      throw new ExpressionEvaluationError(error instanceof Error ? error.message : String(error));
    } finally {
      this.budget = null;
      if (stats) {
        stats.steps = budget.steps;
        stats.units = budget.units;
      }
    }
    if (budget.exceeded) throw new EvaluationLimitError(budget.exceeded);
    return fromCel(raw);
  }

  private compileUncached(kind: ExpressionKind, source: string): CompiledExpression {
    if (Buffer.byteLength(source, 'utf8') > MAX_EXPRESSION_BYTES) {
      throw new ExpressionError(`the expression is longer than ${MAX_EXPRESSION_BYTES} bytes`, null, null);
    }
    if (source.trim() === '') throw new ExpressionError('the expression is empty', null, null);
    this.compilations += 1;
    let program: ParseResult;
    try {
      program = this.environments[kind].parse(source);
    } catch (error) {
      throw celError(error, source);
    }
    prepareTree(program.ast, source);
    const checked = program.check();
    if (!checked.valid) throw celError(checked.error, source);
    const type = checked.type ?? 'dyn';
    const spec = KIND_SPECS[kind];
    const returnsOk = type === 'dyn' || (spec.returns === 'bool' ? type === 'bool' : type === 'map' || type.startsWith('map<'));
    if (!returnsOk) throw new ExpressionError(`${spec.label} must return a ${spec.returns}, this returns ${type}`, null, null);
    return { kind, source, type, program };
  }

  private createEnvironment(kind: ExpressionKind): Environment {
    const env = new Environment({
      unlistedVariablesAreDyn: false,
      // Claims maps mix strings, numbers and lists: {"ns": x, "n": 1} must be allowed.
      homogeneousAggregateLiterals: false,
      // request.user.attributes.?name.orValue("") for attributes that may be absent.
      enableOptionalTypes: true,
      limits: { maxAstNodes: 2_000, maxDepth: 32, maxListElements: 1_000, maxMapEntries: 1_000, maxCallArguments: 32 },
    });
    for (const name of KIND_SPECS[kind].variables) env.registerVariable(name, 'map');
    registerBoundedBuiltins(env, MAX_VALUE_SIZE);
    this.hookEvaluator(env);
    return env;
  }

  /**
   * Installs the step/size/time count on this environment's evaluator. The evaluator is reached
   * through a custom macro (custom macros are handed it to run their arguments); the macro is
   * refused in admins' expressions by prepareTree.
   */
  private hookEvaluator(env: Environment): void {
    let evaluator: { run: Run } | null = null;
    env.registerFunction('tessera_probe(ast): bool', () => ({
      typeCheck: (checker: { getType(name: string): unknown }) => checker.getType('bool'),
      evaluate: (ev: { run: Run }) => {
        evaluator = ev;
        return true;
      },
    }));
    env.evaluate('tessera_probe(true)', {});
    const target = evaluator as { run: Run } | null;
    if (!target || typeof target.run !== 'function') throw new Error('the CEL evaluator cannot be bounded: its run hook is missing');
    const run = target.run;
    const engine = this;
    target.run = function boundedRun(this: unknown, ast: unknown, ctx: unknown): unknown {
      const budget = engine.budget;
      if (budget) {
        if (budget.exceeded) throw new EvaluationLimitError(budget.exceeded);
        budget.steps += 1;
        if (budget.steps > MAX_STEPS) budget.exceeded = `evaluation stopped: more than ${MAX_STEPS} steps`;
        else if (budget.steps % CLOCK_EVERY_STEPS === 0 || budget.units - budget.unitsAtClock >= CLOCK_EVERY_UNITS) {
          budget.unitsAtClock = budget.units;
          if (performance.now() > budget.deadline) budget.exceeded = `evaluation stopped: it ran longer than ${MAX_EVALUATION_MS} ms`;
        }
        if (budget.exceeded) throw new EvaluationLimitError(budget.exceeded);
      }
      const result = run.call(this, ast, ctx);
      if (budget) {
        const size = Array.isArray(result) && (ast as AstLike).op === '+' ? weightOf(result, MAX_VALUE_SIZE) : sizeOf(result);
        budget.units += size;
        if (size > MAX_VALUE_SIZE) budget.exceeded = `evaluation stopped: a value larger than ${MAX_VALUE_SIZE} list elements or characters`;
        else if (budget.units > MAX_VALUE_UNITS) budget.exceeded = `evaluation stopped: it built more than ${MAX_VALUE_UNITS} list elements or characters`;
        if (budget.exceeded) throw new EvaluationLimitError(budget.exceeded);
      }
      return result;
    };
  }
}
