/** The CEL engine of policies and mappings: compiled once, size-limited, and bounded when it runs. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  EvaluationLimitError, ExpressionError, ExpressionEvaluationError, MAX_EVALUATION_MS, MAX_EXPRESSION_BYTES, PolicyEngine,
} from '../../src/domain/policies/engine.js';

const TEN = '[0,1,2,3,4,5,6,7,8,9]';
/** 10^5 iterations of nested comprehensions: far past the step bound. */
const NESTED = `${TEN}.all(a, ${TEN}.all(b, ${TEN}.all(c, ${TEN}.all(d, ${TEN}.all(e, a + b + c + d + e >= 0)))))`;

/** A string quadrupled n times through cel.bind: 16 · 4^n characters if nothing stopped it. */
function quadrupling(n: number): string {
  let open = 'cel.bind(s0, "0123456789abcdef", ';
  let close = ')';
  for (let i = 1; i <= n; i++) {
    const p = `s${i - 1}`;
    open += `cel.bind(s${i}, ${p} + ${p} + ${p} + ${p}, `;
    close += ')';
  }
  return `${open}size(s${n}) > 0${close}`;
}

describe('compiling', () => {
  test('an expression is parsed and type-checked once, then served from the cache', () => {
    const engine = new PolicyEngine();
    const first = engine.compile('policy', 'request.client.client_id == "a"');
    const second = engine.compile('policy', 'request.client.client_id == "a"');
    assert.equal(first, second);
    assert.equal(engine.compilations, 1);
    engine.compile('policy', 'request.client.client_id == "b"');
    assert.equal(engine.compilations, 2);
  });

  test('the same text compiled for another kind is a separate entry (its variables differ)', () => {
    const engine = new PolicyEngine();
    engine.compile('scopeMapping', '{"a": 1}');
    engine.compile('sourceMapping', '{"a": 1}');
    assert.equal(engine.compilations, 2);
  });

  test('an expression over 4 KiB of UTF-8 is refused before parsing', () => {
    const engine = new PolicyEngine();
    const padding = 'é'.repeat(MAX_EXPRESSION_BYTES / 2); // 2 bytes each: just over the limit with the quotes
    assert.throws(() => engine.compile('policy', `"${padding}" == ""`), (e: unknown) => e instanceof ExpressionError && /longer than 4096 bytes/.test(e.message));
    assert.equal(engine.compilations, 0);
  });

  test('a syntax error names its line and column', () => {
    const engine = new PolicyEngine();
    assert.throws(() => engine.compile('policy', 'true &&\n  (false ||'), (e: unknown) => {
      assert.ok(e instanceof ExpressionError);
      assert.equal(e.line, 2);
      assert.equal(e.column, 12);
      return true;
    });
  });

  test('a policy must return a bool and a mapping a map', () => {
    const engine = new PolicyEngine();
    assert.throws(() => engine.compile('policy', '"yes"'), /must return a bool, this returns string/);
    assert.throws(() => engine.compile('scopeMapping', '[1]'), /must return a map, this returns list<int>/);
    assert.doesNotThrow(() => engine.compile('policy', 'request.context.oauth_jwt.admin'), 'dyn is checked at run time');
  });

  test('matches() is refused, even nested', () => {
    const engine = new PolicyEngine();
    assert.throws(() => engine.compile('policy', 'true && [request.client.name].exists(n, n.matches("^(a|aa)+$"))'), /matches\(\) is not allowed/);
  });

  test('too deep a nesting is refused by the parser limits', () => {
    const engine = new PolicyEngine();
    assert.throws(() => engine.compile('policy', `${'('.repeat(100)}true${')'.repeat(100)}`), ExpressionError);
  });
});

describe('evaluating', () => {
  test('JSON whole numbers are CEL ints and come back as numbers', () => {
    const engine = new PolicyEngine();
    const result = engine.evaluate(engine.compile('scopeMapping', '{"next": request.n + 1, "half": double(request.x) / 2.0}'), { request: { n: 41, x: 3 } });
    assert.deepEqual(result, { next: 42, half: 1.5 });
  });

  test('a missing key is an evaluation error with its position', () => {
    const engine = new PolicyEngine();
    assert.throws(
      () => engine.evaluate(engine.compile('policy', 'request.a.b == 1'), { request: {} }),
      (e: unknown) => e instanceof ExpressionEvaluationError && /No such key: a at line 1, column 9/.test(e.message),
    );
  });

  test('input nested deeper than 64 levels is refused', () => {
    const engine = new PolicyEngine();
    let deep: unknown = 'x';
    for (let i = 0; i < 100; i++) deep = { d: deep };
    assert.throws(() => engine.evaluate(engine.compile('policy', 'has(request.d)'), { request: deep }), EvaluationLimitError);
  });
});

describe('the evaluation bound', () => {
  test('nested comprehensions are stopped (steps or time), fast', () => {
    const engine = new PolicyEngine();
    const compiled = engine.compile('policy', NESTED);
    const started = performance.now();
    assert.throws(() => engine.evaluate(compiled, {}), (e: unknown) => e instanceof EvaluationLimitError && /evaluation stopped/.test(e.message));
    assert.ok(performance.now() - started < MAX_EVALUATION_MS * 10, 'stopped near the bound');
  });

  test('a string grown to 16 · 4^14 characters is stopped by the size bound before it allocates', () => {
    const engine = new PolicyEngine();
    const compiled = engine.compile('policy', quadrupling(14));
    assert.throws(() => engine.evaluate(compiled, { request: {} }), /a value larger than 100000 list elements or characters/);
  });

  test('a list of references grown by `+` counts what it holds: joining or searching it is stopped before it runs', () => {
    const engine = new PolicyEngine();
    for (const use of ['size(L.join()) > 0', 'request.t in L']) {
      // Four-fold eight times: 65,536 references to a 5,000-character string (327 M characters to join).
      let expression = use;
      for (let i = 0; i < 8; i++) expression = `cel.bind(L, L + L + L + L, ${expression})`;
      expression = `cel.bind(L, [request.s], ${expression})`;
      const started = performance.now();
      assert.throws(() => engine.evaluate(engine.compile('policy', expression), { request: { s: 'a'.repeat(5_000), t: 'b' } }), EvaluationLimitError);
      assert.ok(performance.now() - started < MAX_EVALUATION_MS * 2, `${use}: stopped near the bound`);
    }
  });

  test('join() refuses an output past the value bound before building it (a long separator)', () => {
    const engine = new PolicyEngine();
    const compiled = engine.compile('policy', 'size(["a","b","c"].join(request.s)) > 0');
    assert.throws(() => engine.evaluate(compiled, { request: { s: 'x'.repeat(60_000) } }), /join\(\) would build 120003 characters, more than 100000/);
    assert.equal(engine.evaluate(engine.compile('policy', '["a","b"].join(",") == "a,b" && ["a", "b"].join() == "ab"'), {}), true);
  });

  test('a claim longer than the value bound is refused when read', () => {
    const engine = new PolicyEngine();
    const compiled = engine.compile('policy', 'size(request.s) > 0');
    assert.throws(() => engine.evaluate(compiled, { request: { s: 'a'.repeat(200_000) } }), /a value larger than 100000/);
  });
});

describe('duration()', () => {
  const engine = new PolicyEngine();
  const run = (expression: string, request: Record<string, unknown> = {}) => engine.evaluate(engine.compile('policy', expression), { request });

  test('parses Go-style durations like the library did', () => {
    assert.equal(run('duration("1h30m") == duration("5400s")'), true);
    assert.equal(run('duration("-1.5s") == duration("-1500ms") && duration("-1.5s") < duration("0")'), true);
    assert.equal(run('duration(".5s") == duration("500ms") && duration("1us") == duration("1µs") && duration("+2m") == duration("120s")'), true);
    assert.equal(run('duration("2h").getMinutes() == 120 && timestamp(0) + duration("1h") == timestamp(3600)'), true);
  });

  test('refuses malformed strings with a clear error', () => {
    for (const text of ['', 's', '1', '1x', '1..5s', '-', '1h 2m']) {
      assert.throws(() => run(`duration(request.d) == duration("0")`, { d: text }), ExpressionEvaluationError, JSON.stringify(text));
    }
  });

  test('duration("1"×4000) and a 40,000-digit claim answer at once (the library took 18 s)', () => {
    for (const [expression, request] of [
      [`duration("${'1'.repeat(4_000)}") > duration("1s")`, {}],
      ['duration(request.d) > duration("1s")', { d: '1'.repeat(40_000) }],
      ['duration(request.d) > duration("1s")', { d: `${'9'.repeat(60)}h` }],
    ] as const) {
      const started = performance.now();
      assert.throws(() => run(expression, request), ExpressionEvaluationError);
      assert.ok(performance.now() - started < MAX_EVALUATION_MS, 'answered within the bound');
    }
  });

  test('its internal replacement cannot be called by name, and type errors name duration()', () => {
    assert.throws(() => engine.compile('policy', 'tessera_duration("1s") > duration("0")'), /tessera_duration\(\) is internal/);
    assert.throws(() => engine.compile('policy', 'duration(1) > duration("0")'), /no matching overload for 'duration\(int\)'/);
  });

  test('a stopped evaluation cannot be rescued by `|| true` (CEL absorbs errors in ||)', () => {
    const engine = new PolicyEngine();
    const compiled = engine.compile('policy', `${NESTED} || true`);
    assert.throws(() => engine.evaluate(compiled, {}), EvaluationLimitError);
  });

  test('the engine stays usable after a stopped evaluation', () => {
    const engine = new PolicyEngine();
    assert.throws(() => engine.evaluate(engine.compile('policy', NESTED), {}), EvaluationLimitError);
    assert.equal(engine.evaluate(engine.compile('policy', `${TEN}.all(a, a >= 0)`), {}), true);
  });

  test('a bounded evaluation of an ordinary policy takes a few dozen steps', () => {
    const engine = new PolicyEngine();
    const stats = { steps: 0, units: 0 };
    const result = engine.evaluate(
      engine.compile('policy', 'request.context.oauth_jwt.iss == "https://my.issuer" && "openid" in request.context.oauth_scopes'),
      { request: { context: { oauth_jwt: { iss: 'https://my.issuer' }, oauth_scopes: ['openid'] } } },
      stats,
    );
    assert.equal(result, true);
    assert.ok(stats.steps > 0 && stats.steps < 50, `${stats.steps} steps`);
  });
});
