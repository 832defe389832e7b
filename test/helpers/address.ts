/**
 * Requests from another client address: Linux routes all of 127.0.0.0/8 to loopback, so a socket
 * bound to 127.0.0.2 reaches a server on 127.0.0.1 as a second client (no proxy header involved).
 */
import http from 'node:http';

export interface AddressedAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Record<string, unknown>;
}

export function requestFrom(
  localAddress: string, url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<AddressedAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: options.method ?? 'POST', headers: options.headers, localAddress, agent: false }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => {
        let body: Record<string, unknown>;
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch {
          body = { raw: text };
        }
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body });
      });
    });
    request.on('error', reject);
    request.end(options.body);
  });
}

/** A form POST from `localAddress`. */
export function postFormFrom(localAddress: string, url: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<AddressedAnswer> {
  return requestFrom(localAddress, url, {
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
}
