import pino, { type Logger } from 'pino';

export type { Logger };

/** JSON logs; anything that could carry a secret is redacted even if a caller logs it by mistake. */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'tessera' },
      redact: {
        paths: [
          'req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'headers.cookie',
          '*.client_secret', '*.password', '*.secret', '*.token', '*.refresh_token', '*.access_token',
          '*.device_code', '*.client_assertion', '*.code_verifier',
        ],
        censor: '[redacted]',
      },
    },
    destination,
  );
}
