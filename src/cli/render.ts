/** How the CLI shows a plan: one line per change and its fields, coloured on a terminal. */
import type { ConfigChange } from '../domain/config-document/index.js';

export interface Style {
  green(text: string): string;
  yellow(text: string): string;
  red(text: string): string;
  dim(text: string): string;
  bold(text: string): string;
}

const ansi = (open: number, close: number) => (text: string) => `\x1b[${open}m${text}\x1b[${close}m`;
const plain = (text: string) => text;

/**
 * Colour only for a terminal, never when NO_COLOR is set (no-color.org); FORCE_COLOR asks for it
 * elsewhere (a CI log that renders ANSI).
 */
export function styleFor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv): Style {
  const noColor = env.NO_COLOR !== undefined && env.NO_COLOR !== '';
  const force = env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '' && env.FORCE_COLOR !== '0';
  if (noColor || !(stream.isTTY || force)) return { green: plain, yellow: plain, red: plain, dim: plain, bold: plain };
  return { green: ansi(32, 39), yellow: ansi(33, 39), red: ansi(31, 39), dim: ansi(2, 22), bold: ansi(1, 22) };
}

const SIGN = { CREATE: '+', UPDATE: '~', DELETE: '-' } as const;
const VERB = { CREATE: 'create', UPDATE: 'update', DELETE: 'delete' } as const;

function value(v: unknown): string {
  return v === undefined ? 'null' : JSON.stringify(v);
}

export function renderChange(change: ConfigChange, s: Style): string {
  const colour = change.action === 'CREATE' ? s.green : change.action === 'UPDATE' ? s.yellow : s.red;
  const lines = [colour(`${SIGN[change.action]} ${VERB[change.action]} ${change.kind} ${s.bold(change.name)}`)];
  if (change.action === 'UPDATE') {
    for (const key of Object.keys(change.after ?? {})) {
      lines.push(`    ${key}: ${s.red(value(change.before?.[key]))} ${s.dim('→')} ${s.green(value(change.after?.[key]))}`);
    }
  } else {
    const fields = (change.action === 'CREATE' ? change.after : change.before) ?? {};
    for (const [key, v] of Object.entries(fields)) lines.push(colour(`    ${key}: ${value(v)}`));
  }
  return lines.join('\n');
}

export function summary(changes: readonly ConfigChange[]): string {
  if (changes.length === 0) return 'No changes: the server matches the document.';
  const count = (action: ConfigChange['action']) => changes.filter((c) => c.action === action).length;
  return `${changes.length} change${changes.length === 1 ? '' : 's'}: ${count('CREATE')} to create, ${count('UPDATE')} to update, ${count('DELETE')} to delete.`;
}

export function renderPlan(changes: readonly ConfigChange[], s: Style): string {
  return [...changes.map((c) => renderChange(c, s)), '', s.bold(summary(changes))].join('\n').trimStart();
}
