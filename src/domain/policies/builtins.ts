/**
 * Tessera's own versions of the cel-js builtins whose cost is not proportional to what the
 * evaluation budget counts (engine.ts):
 * - `duration(string)`: the library parses with an unanchored backtracking regular expression,
 *   cubic in the length (`duration("1"×4000)` runs 18 s); this parser reads each character once;
 * - `list.join()` / `list.join(string)`: the output can be the list's length times an element's
 *   (a list of 65,536 references to one 5,000-character string joins to 327 M characters);
 *   this one computes the length first and refuses past `maxChars`.
 *
 * cel-js refuses a second overload with the same signature, so these are registered under
 * internal names and the engine renames the calls in the parsed tree before type-checking
 * (RENAMED_CALLS); every other builtin runs in time linear in its (counted, capped) arguments.
 * `timestamp(string)` needs no replacement: the library refuses strings outside 20–30 characters
 * before parsing.
 */
import { EvaluationError, type Environment } from '@marcbachmann/cel-js';

/** Longer duration strings are refused: the longest meaningful one ("-2562047h47m16.854775807s") has 25. */
export const MAX_DURATION_CHARS = 64;
/** CEL's range for durations: ±10,000 years (google.protobuf.Duration). */
const MAX_DURATION_SECONDS = 315_576_000_000n;
const NANOS_PER_SECOND = 1_000_000_000n;

const UNIT_NANOS: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  'µs': 1_000n, // U+00B5 micro sign
  'μs': 1_000n, // U+03BC Greek mu (Go accepts both)
  ms: 1_000_000n,
  s: NANOS_PER_SECOND,
  m: 60n * NANOS_PER_SECOND,
  h: 3_600n * NANOS_PER_SECOND,
};

/** The call names the engine rewrites (`name/arity` → internal name) before type-checking. */
export const RENAMED_CALLS: Record<string, string> = {
  'call:duration/1': 'tessera_duration',
  'rcall:join/0': 'tessera_join',
  'rcall:join/1': 'tessera_join',
};

/** The user-facing name of an internal one, for error messages. */
export const PUBLIC_NAMES: Record<string, string> = { tessera_duration: 'duration', tessera_join: 'join' };

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

function invalid(text: string): EvaluationError {
  return new EvaluationError(`invalid duration string: "${text}"`);
}

/** Total nanoseconds of a Go-style duration ("300ms", "-1.5h", "2h45m"), in one pass. */
export function parseDurationNanos(text: string): bigint {
  if (text.length > MAX_DURATION_CHARS) throw new EvaluationError(`duration strings are limited to ${MAX_DURATION_CHARS} characters`);
  let i = 0;
  const negative = text[0] === '-';
  if (text[0] === '-' || text[0] === '+') i = 1;
  if (text.slice(i) === '0') return 0n;
  if (i === text.length) throw invalid(text);
  let total = 0n;
  while (i < text.length) {
    const intStart = i;
    while (i < text.length && isDigit(text.charCodeAt(i))) i += 1;
    const intPart = text.slice(intStart, i);
    let fracPart = '';
    if (text[i] === '.') {
      const fracStart = (i += 1);
      while (i < text.length && isDigit(text.charCodeAt(i))) i += 1;
      fracPart = text.slice(fracStart, i);
    }
    if (intPart === '' && fracPart === '') throw invalid(text);
    const unitStart = i;
    while (i < text.length && text[i] !== '.' && !isDigit(text.charCodeAt(i))) i += 1;
    const unit = UNIT_NANOS[text.slice(unitStart, i)];
    if (unit === undefined) throw invalid(text);
    total += BigInt(intPart || '0') * unit;
    if (fracPart !== '') total += (BigInt(fracPart) * unit) / 10n ** BigInt(fracPart.length);
    if (total > MAX_DURATION_SECONDS * NANOS_PER_SECOND) throw new EvaluationError(`duration out of range: "${text}"`);
  }
  return negative ? -total : total;
}

type DurationConstructor = new (seconds: bigint, nanos: number) => unknown;

function joinBounded(list: unknown[], separator: string, maxChars: number): string {
  let length = Math.max(0, list.length - 1) * separator.length;
  for (const item of list) {
    if (typeof item !== 'string') throw new EvaluationError('join(): the list must contain only strings');
    length += item.length;
  }
  if (length > maxChars) throw new EvaluationError(`join() would build ${length} characters, more than ${maxChars}`);
  return list.join(separator);
}

/** Registers the replacements on an environment (before any expression is parsed). */
export function registerBoundedBuiltins(env: Environment, maxChars: number): void {
  // The library's Duration class is not exported; its values are, and operators dispatch on it.
  const sample = env.evaluate('duration("1s")', {}) as { constructor: DurationConstructor };
  const Duration = sample.constructor;
  env.registerFunction('tessera_duration(string): google.protobuf.Duration', (text: string) => {
    const nanos = parseDurationNanos(text);
    // Same representation as the library's: truncated seconds, nanos carrying the sign.
    return new Duration(nanos / NANOS_PER_SECOND, Number(nanos % NANOS_PER_SECOND));
  });
  env.registerFunction('list<string>.tessera_join(): string', (list: unknown[]) => joinBounded(list, '', maxChars));
  env.registerFunction('list<string>.tessera_join(string): string', (list: unknown[], separator: string) => joinBounded(list, separator, maxChars));
}
