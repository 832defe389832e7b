/**
 * The port's query language (ports.ts), with MongoDB's meaning, compiled to SQLite SQL over a table
 * of JSON records (`id`, `doc`, `dates`; see sqlite-store.ts). Filters arrive in stored form
 * (codec.ts: `_id`, JSON fields as text). Values are bound as parameters, never spliced into the
 * SQL, so one filter shape gives one SQL text and the store prepares it once.
 *
 * MongoDB's rules kept here: equality, $in and the ranges match an array field when an element
 * matches; $ne and $nin then mean "no element"; null matches a missing field too; a range compares
 * within one type only (a number never matches a string bound). Indexed fields (specs.ts) hold
 * scalars, so they are compared plainly, in the form their expression index answers.
 */
import type { FindOptions } from '../ports.js';

type Doc = Record<string, unknown>;
export type Param = string | number | null;

const FIELD = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$/;

const paths = new Map<string, string>();
/** The SQL literal of a field's JSON path (field names come from code, but are checked anyway); made once per field. */
export function jsonPath(field: string): string {
  let path = paths.get(field);
  if (path === undefined) {
    if (!FIELD.test(field)) throw new Error(`not a field name: ${field}`);
    path = `'$.${field.split('.').map((part) => `"${part}"`).join('.')}'`;
    // Field names come from code: few. The bound only guards against a caller that makes them up.
    if (paths.size < 10_000) paths.set(field, path);
  }
  return path;
}

/** The SQL expression of a stored field: the id column, or the value inside the JSON record. */
export function fieldExpression(field: string): string {
  return field === '_id' ? 'id' : `json_extract(doc, ${jsonPath(field)})`;
}

/** A bound value as stored: Dates as epoch milliseconds (see records.ts), booleans as SQLite's 1 and 0. */
export function toParam(value: unknown): Param {
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || typeof value === 'number') return value;
  throw new Error(`cannot compare with ${Object.prototype.toString.call(value)}`);
}

const isRegExp = (value: unknown): value is RegExp => value instanceof RegExp;
const isOperators = (value: unknown): value is Doc =>
  typeof value === 'object' && value !== null && !(value instanceof Date) && !isRegExp(value) && !Array.isArray(value)
  && Object.keys(value).length > 0 && Object.keys(value).every((key) => key.startsWith('$'));

const RANGES: Record<string, string> = { $gt: '>', $gte: '>=', $lt: '<', $lte: '<=' };

/** `typeof(x)` of the values a bound of this type compares with: MongoDB's type brackets. */
function bracket(value: Param): string {
  return typeof value === 'string' ? `= 'text'` : `IN ('integer', 'real')`;
}

/** The text a regular expression matches when it is a literal (every special character escaped), else null. */
function literalOf(pattern: RegExp): string | null {
  if (!/^(?:[^.*+?^${}()|[\]\\]|\\[.*+?^${}()|[\]\\/-])*$/.test(pattern.source)) return null;
  return pattern.source.replace(/\\(.)/g, '$1');
}

/** The fields of a collection kept in its trigram index (specs.ts `search`), and that index's table. */
export interface SearchIndex {
  table: string;
  fields: ReadonlySet<string>;
  /** Whether an FTS5 query has few enough matches that fetching them all beats walking a sorted index. */
  selective(query: string): boolean;
}

export interface CompilerOptions {
  /** The stored fields compared as scalars: the indexed ones, and the id. */
  scalar: ReadonlySet<string>;
  jsonFields?: readonly string[] | undefined;
  search?: SearchIndex | null;
}

export class FilterCompiler {
  readonly params: Param[] = [];
  private readonly scalar: ReadonlySet<string>;
  private readonly jsonFields: readonly string[];
  private readonly search: SearchIndex | null;
  /** Inside $and: terms the planner is not offered (see where). */
  private depth = 0;

  constructor(options: CompilerOptions) {
    this.scalar = options.scalar;
    this.jsonFields = options.jsonFields ?? [];
    this.search = options.search ?? null;
  }

  /**
   * The condition of a stored filter, as one SQL boolean expression. The port's convention (see
   * domain/users.ts): a condition under $and is not selective (a type, an action shared by many
   * records), so its index is not offered to the planner, which walks the sort's index instead.
   */
  where(filter: Doc): string {
    const terms: string[] = [];
    for (const [key, value] of Object.entries(filter)) {
      if (value === undefined) continue;
      if (key === '$or' || key === '$and') {
        const searched = key === '$or' ? this.searched(value as Doc[]) : null;
        if (searched) {
          terms.push(searched);
          continue;
        }
        if (key === '$and') this.depth++;
        const branches = (value as Doc[]).map((branch) => this.where(branch));
        if (key === '$and') this.depth--;
        terms.push(branches.length === 0 ? (key === '$or' ? '0' : '1') : `(${branches.join(key === '$or' ? ' OR ' : ' AND ')})`);
      } else if (key.startsWith('$')) {
        throw new Error(`unsupported filter operator ${key}`);
      } else {
        terms.push(this.field(key, value));
      }
    }
    return terms.length === 0 ? '1' : terms.join(' AND ');
  }

  private bind(value: Param): string {
    this.params.push(value);
    return '?';
  }

  /** `test` of the field's value, or of any element when the field holds an array. */
  private any(field: string, test: (value: string) => string): string {
    const column = fieldExpression(field);
    // Unary + keeps the expression from matching its index (SQLite's documented way).
    if (this.scalar.has(field)) return test(this.depth > 0 ? `+${column}` : column);
    const path = jsonPath(field);
    // Left to right, as the parameters are bound: the array branch first.
    const inArray = test('value');
    return `(CASE json_type(doc, ${path}) WHEN 'array' THEN EXISTS (SELECT 1 FROM json_each(doc, ${path}) WHERE ${inArray}) ELSE ${test(column)} END)`;
  }

  private field(field: string, condition: unknown): string {
    if (this.jsonFields.some((json) => field === json || field.startsWith(`${json}.`))) {
      throw new Error(`${field}: a JSON field cannot be queried`);
    }
    if (!isOperators(condition)) return this.equals(field, condition);
    const terms = Object.entries(condition).map(([op, operand]) => this.operator(field, op, operand));
    return terms.length === 1 ? terms[0]! : `(${terms.join(' AND ')})`;
  }

  private equals(field: string, value: unknown): string {
    if (isRegExp(value)) return this.regex(field, value);
    const bound = toParam(value);
    return this.any(field, (x) => (bound === null ? `${x} IS NULL` : `${x} IS ${this.bind(bound)}`));
  }

  private isIn(field: string, values: unknown[]): string {
    const bound = values.map(toParam);
    const present = bound.filter((value) => value !== null);
    const withNull = present.length < bound.length;
    if (present.length === 0) return withNull ? this.equals(field, null) : '0';
    // One parameter (a JSON array) for any number of values: one SQL text for every length.
    return this.any(field, (x) => {
      const member = `${x} IN (SELECT value FROM json_each(${this.bind(JSON.stringify(present))}))`;
      return withNull ? `(${x} IS NULL OR ${member})` : member;
    });
  }

  private regex(field: string, pattern: RegExp): string {
    const literal = literalOf(pattern);
    // An ASCII literal, case-insensitive or not: instr() over SQLite's lower(), which folds ASCII
    // only, as JavaScript's /i does for an ASCII pattern without the u flag. Otherwise the RegExp.
    if (literal !== null && /^[\x20-\x7e]*$/.test(literal) && /^i?$/.test(pattern.flags)) {
      const folded = pattern.flags === 'i';
      return this.any(field, (x) => `(typeof(${x}) = 'text' AND instr(${folded ? `lower(${x})` : x}, ${this.bind(folded ? literal.toLowerCase() : literal)}) > 0)`);
    }
    return this.any(field, (x) => `tessera_regexp(${this.bind(pattern.source)}, ${this.bind(pattern.flags)}, ${x})`);
  }

  /**
   * An $or of one literal searched in several fields of the trigram index (the users search):
   * the index gives the candidates (every record holding the text, in any case), the literal test
   * then decides exactly. Null when the $or is not one, the text is under a trigram long, or it
   * matches many records: then a page is found sooner by walking its sorted index and testing.
   */
  private searched(branches: Doc[]): string | null {
    if (!this.search || branches.length === 0) return null;
    const fields: string[] = [];
    let pattern: RegExp | null = null;
    for (const branch of branches) {
      const entries = Object.entries(branch);
      if (entries.length !== 1) return null;
      const [field, condition] = entries[0]!;
      const regex = condition instanceof RegExp ? condition
        : isOperators(condition) && Object.keys(condition).length === 1 && condition.$regex instanceof RegExp ? condition.$regex : null;
      if (!regex || !this.search.fields.has(field)) return null;
      if (pattern && (pattern.source !== regex.source || pattern.flags !== regex.flags)) return null;
      pattern = regex;
      fields.push(field);
    }
    const literal = literalOf(pattern!);
    if (literal === null || [...literal].length < 3 || !/^i?$/.test(pattern!.flags)) return null;
    const query = `{${fields.join(' ')}} : "${literal.replace(/"/g, '""')}"`;
    if (!this.search.selective(query)) return null;
    const candidates = `rowid IN (SELECT rowid FROM "${this.search.table}" WHERE "${this.search.table}" MATCH ${this.bind(query)})`;
    const exact = branches.map((branch) => this.where(branch)).join(' OR ');
    return `(${candidates} AND (${exact}))`;
  }

  private operator(field: string, op: string, operand: unknown): string {
    switch (op) {
      // IS: never null, so NOT keeps the records without the field, as MongoDB's $ne does.
      case '$ne': return `NOT ${this.equals(field, operand)}`;
      case '$in': return this.isIn(field, operand as unknown[]);
      case '$nin': return `NOT ifnull(${this.isIn(field, operand as unknown[])}, 0)`;
      case '$exists':
        if (field === '_id') return operand ? '1' : '0';
        return `json_type(doc, ${jsonPath(field)}) IS ${operand ? 'NOT NULL' : 'NULL'}`;
      case '$regex': return this.regex(field, isRegExp(operand) ? operand : new RegExp(String(operand)));
      default: {
        const comparison = RANGES[op];
        if (!comparison) throw new Error(`unsupported operator ${op} on ${field}`);
        const bound = toParam(operand);
        if (bound === null) return '0';
        return this.any(field, (x) => `(typeof(${x}) ${bracket(bound)} AND ${x} ${comparison} ${this.bind(bound)})`);
      }
    }
  }
}

/** ORDER BY of a stored sort (`_id` is the id column); empty without one. */
export function orderBy(sort: FindOptions['sort']): string {
  if (!sort) return '';
  const keys = Object.entries(sort).map(([field, direction]) => `${fieldExpression(field)} ${direction === -1 ? 'DESC' : 'ASC'}`);
  return keys.length === 0 ? '' : ` ORDER BY ${keys.join(', ')}`;
}
