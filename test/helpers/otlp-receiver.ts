/**
 * A real OTLP/HTTP receiver on loopback: accepts POST /v1/traces with the JSON encoding
 * (application/json, what @opentelemetry/exporter-trace-otlp-http sends) and keeps every payload,
 * raw and decoded, so tests can look at spans and search the bytes for secrets.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface OtlpAttribute { key: string; value: { stringValue?: string; intValue?: number | string; boolValue?: boolean } }
export interface OtlpSpan {
  traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number;
  attributes: OtlpAttribute[]; status?: { code?: number };
}
interface ExportRequest {
  resourceSpans: { resource: { attributes: OtlpAttribute[] }; scopeSpans: { spans: OtlpSpan[] }[] }[];
}

export interface OtlpReceiver {
  url: string;
  /** Raw request bodies, as received. */
  payloads: string[];
  spans(): OtlpSpan[];
  resourceAttributes(): OtlpAttribute[];
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const payloads: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces' || !String(req.headers['content-type']).startsWith('application/json')) {
        res.writeHead(415).end();
        return;
      }
      payloads.push(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const decoded = () => payloads.map((p) => JSON.parse(p) as ExportRequest);
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    payloads,
    spans: () => decoded().flatMap((r) => r.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((s) => s.spans))),
    resourceAttributes: () => decoded().flatMap((r) => r.resourceSpans.flatMap((rs) => rs.resource.attributes)),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export function attribute(span: Pick<OtlpSpan, 'attributes'>, key: string): string | number | boolean | undefined {
  const found = span.attributes.find((a) => a.key === key);
  if (!found) return undefined;
  const v = found.value;
  return v.stringValue ?? (v.intValue === undefined ? v.boolValue : Number(v.intValue));
}
