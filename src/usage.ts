/** `node dist/src/main.js --help` and `--version`: answered before any configuration or server code loads. */
import { VERSION } from './version.js';

export const USAGE = `Tessera ${VERSION}: an OAuth 2.0 / OIDC identity server for devices and machines.

Usage: node dist/src/main.js [--help | --version]

Without options it starts the server, configured by environment variables:
  PORT (9000), HOST (0.0.0.0), TESSERA_PUBLIC_URL (http://localhost:PORT)
  TESSERA_DATA_DIR (./data, the embedded store) or TESSERA_MONGODB_URI with TESSERA_SECRET_KEY
  TESSERA_BOOTSTRAP_TOKEN, TESSERA_BOOTSTRAP_PASSWORD (first start), TESSERA_LOG_LEVEL (info)
  TESSERA_WORKERS, TESSERA_EVENT_RETENTION_DAYS, TESSERA_EMBEDDED_MAX_EVENTS
  OTEL_EXPORTER_OTLP_ENDPOINT and the other OTEL_* variables: traces over OTLP/HTTP (off when unset)

Once running: a browser at the public URL shows the landing page, /graphql the admin API's
explorer, /metrics Prometheus metrics. See README.md.

Options:
  -h, --help     print this and exit
  -v, --version  print the version and exit
`;

/** What the command line asks for: null to start the server, else what to print and the exit code. */
export function commandLine(args: readonly string[]): { out: string; err: string; code: number } | null {
  if (args.length === 0) return null;
  const [first] = args;
  if (args.length === 1 && (first === '--help' || first === '-h')) return { out: USAGE, err: '', code: 0 };
  if (args.length === 1 && (first === '--version' || first === '-v')) return { out: `${VERSION}\n`, err: '', code: 0 };
  return { out: '', err: `tessera: unknown argument ${JSON.stringify(args.join(' '))}; the server is configured by environment variables (see --help)\n`, code: 2 };
}
