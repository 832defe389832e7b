/**
 * A bound on how deep a GraphQL document nests ({ ( [), checked before it is parsed. graphql-js
 * parses and validates by recursion: `{ a { a { … } } }` some 3,000 levels deep ran out of stack in
 * the parser on Node 20 (a 400 saying "Maximum call stack size exceeded") and, on Node 24, past the
 * parser in validation (a 500). The lexer loops rather than recursing, so it can measure any
 * document a body can hold. MAX_DEPTH (limits.ts) still decides what real queries may select;
 * this only keeps a document from reaching the recursive steps at all.
 */
import { Lexer, Source, TokenKind } from 'graphql';

export const MAX_NESTING = 64;

const OPENING = new Set<string>([TokenKind.BRACE_L, TokenKind.PAREN_L, TokenKind.BRACKET_L]);
const CLOSING = new Set<string>([TokenKind.BRACE_R, TokenKind.PAREN_R, TokenKind.BRACKET_R]);

/** Whether the document nests deeper than `limit`; a document the lexer refuses is left to the parser to answer. */
export function nestsTooDeep(query: string, limit = MAX_NESTING): boolean {
  const lexer = new Lexer(new Source(query));
  let depth = 0;
  try {
    for (let token = lexer.advance(); token.kind !== TokenKind.EOF; token = lexer.advance()) {
      if (OPENING.has(token.kind)) {
        if (++depth > limit) return true;
      } else if (CLOSING.has(token.kind)) {
        depth--;
      }
    }
  } catch {
    return false;
  }
  return false;
}
