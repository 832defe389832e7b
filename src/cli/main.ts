/**
 * `tessera`: configuration as code against a running server (contract: "Configuration as code").
 *   tessera export --url URL [--json]
 *   tessera plan FILE --url URL [--prune]       exit 0: no change, 2: changes, 1: error
 *   tessera apply FILE --url URL [--prune] [--secrets-out FILE]
 * The admin token comes from TESSERA_TOKEN (never an argument: arguments show in `ps`).
 */
import { readFileSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { AdminApi, CliError } from './api.js';
import { renderPlan, styleFor, summary } from './render.js';
import type { ConfigSecret } from '../domain/config-document/index.js';

const USAGE = `Usage: tessera <command> [options]

Commands:
  export               Write the server's configuration to stdout (YAML; JSON with --json)
  plan FILE            Show what applying FILE (YAML or JSON) would change.
                       Exit code 0: no change, 2: changes (drift), 1: error
  apply FILE           Make those changes, all or none; print the secrets it made, once

Options:
  --url URL            The Tessera server (or TESSERA_URL)
  --prune              Also delete what FILE does not name
  --json               export: JSON instead of YAML
  --secrets-out FILE   apply: write the secrets to FILE (mode 0600) instead of stdout
  -h, --help           Show this help
  -v, --version        Show the version

Environment:
  TESSERA_TOKEN        An admin token (required)
  NO_COLOR             Plain output even on a terminal`;

interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

function version(): string {
  const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'package.json');
  return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
}

async function readDocumentFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new CliError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  try {
    // JSON is YAML 1.2, but JSON.parse names the position in a .json file more plainly.
    return file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text);
  } catch (error) {
    throw new CliError(`${file} is not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(error as Error).message}`);
  }
}

/** Secrets to a file only its owner can read: created 0600, and chmod'ed in case it already existed. */
async function writeSecrets(file: string, secrets: readonly ConfigSecret[]): Promise<void> {
  const handle = await open(file, 'w', 0o600);
  try {
    await handle.chmod(0o600);
    await handle.writeFile(YAML.stringify({ secrets }));
  } finally {
    await handle.close();
  }
}

/** While the apply runs: a line that counts seconds on a terminal, one line otherwise. */
function progress(io: Io, count: number): () => void {
  const started = Date.now();
  const text = () => `applying ${count} change${count === 1 ? '' : 's'}… ${Math.round((Date.now() - started) / 1000)}s`;
  if (!io.stderr.isTTY) {
    io.stderr.write(`applying ${count} change${count === 1 ? '' : 's'}…\n`);
    return () => undefined;
  }
  io.stderr.write(text());
  const timer = setInterval(() => io.stderr.write(`\r${text()}`), 1000);
  return () => {
    clearInterval(timer);
    io.stderr.write('\r\x1b[2K');
  };
}

export async function run(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      url: { type: 'string' }, prune: { type: 'boolean', default: false }, json: { type: 'boolean', default: false },
      'secrets-out': { type: 'string' }, help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'v' },
    },
  });
  if (values.help) return io.stdout.write(`${USAGE}\n`), 0;
  if (values.version) return io.stdout.write(`tessera ${version()}\n`), 0;
  const [command, file, ...extra] = positionals;
  if (!command) throw new CliError(`no command given\n\n${USAGE}`);
  if (!['export', 'plan', 'apply'].includes(command)) throw new CliError(`unknown command '${command}' (export, plan or apply)`);
  if (command !== 'export' && !file) throw new CliError(`${command} needs a FILE`);
  if (extra.length > 0 || (command === 'export' && file)) throw new CliError(`unexpected argument '${command === 'export' ? file : extra[0]}'`);
  const url = values.url ?? io.env.TESSERA_URL;
  if (!url || !URL.canParse(url)) throw new CliError('give the server with --url http(s)://… (or TESSERA_URL)');
  const token = io.env.TESSERA_TOKEN;
  if (!token) throw new CliError('set TESSERA_TOKEN to an admin token');
  const api = new AdminApi(url, token);
  const style = styleFor(io.stdout, io.env);

  if (command === 'export') {
    const document = await api.export();
    io.stdout.write(values.json ? `${JSON.stringify(document, null, 2)}\n` : YAML.stringify(document));
    return 0;
  }
  const document = await readDocumentFile(file!);
  const planned = await api.plan(document, values.prune);
  io.stdout.write(`${renderPlan(planned.changes, style)}\n`);
  if (command === 'plan') return planned.changes.length === 0 ? 0 : 2;
  if (planned.changes.length === 0) return 0;
  const done = progress(io, planned.changes.length);
  let applied;
  try {
    applied = await api.apply(document, values.prune);
  } finally {
    done();
  }
  io.stdout.write(`${style.green(`Applied. ${summary(applied.changes)}`)}\n`);
  if (applied.secrets.length === 0) return 0;
  if (values['secrets-out']) {
    await writeSecrets(values['secrets-out'], applied.secrets);
    io.stdout.write(`${applied.secrets.length} secret${applied.secrets.length === 1 ? '' : 's'} written to ${values['secrets-out']} (mode 0600); they are shown only once.\n`);
  } else {
    io.stdout.write(`\nSecrets made by this apply (shown only once: store them now):\n`);
    for (const s of applied.secrets) io.stdout.write(`  ${s.kind} ${s.name}: ${s.secret}\n`);
  }
  return 0;
}

export async function main(): Promise<void> {
  const io: Io = { stdout: process.stdout, stderr: process.stderr, env: process.env };
  try {
    process.exitCode = await run(process.argv.slice(2), io);
  } catch (error) {
    const known = error instanceof CliError || (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS');
    io.stderr.write(`error: ${known ? (error as Error).message : String((error as Error).stack ?? error)}\n`);
    process.exitCode = 1;
  }
}
