/**
 * src/config.ts against the contract's table ("Running it"): every variable, its default, and a
 * bad value refused with a ConfigError naming the variable (main turns that into one stderr line;
 * test/http/startup.test.ts checks the real process).
 */
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig, resolveSecretKey } from '../../src/config.js';
import { withTempDir } from '../helpers/temp-dir.js';

const SECRET = 'x'.repeat(32);

function refuses(env: Record<string, string>, variable: string): ConfigError {
  let caught: unknown;
  try {
    loadConfig(env);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError for ${JSON.stringify(env)}, got ${String(caught)}`);
  assert.equal(caught.variable, variable);
  assert.ok(caught.message.startsWith(`${variable}: `), caught.message);
  assert.ok(!caught.message.includes('\n'), 'one line');
  return caught;
}

describe('configuration defaults (contract table)', () => {
  test('an empty environment gives the contract defaults', () => {
    const config = loadConfig({});
    assert.equal(config.port, 9000);
    assert.equal(config.host, '0.0.0.0');
    assert.equal(config.publicUrl, 'http://localhost:9000');
    assert.equal(config.mongodbUri, null);
    assert.equal(config.dataDir, path.resolve('./data'));
    assert.equal(config.bootstrapToken, null);
    assert.equal(config.bootstrapPassword, null);
    assert.equal(config.secretKey, null);
    assert.equal(config.logLevel, 'info');
  });

  test('TESSERA_PUBLIC_URL defaults to http://localhost:$PORT', () => {
    assert.equal(loadConfig({ PORT: '8123' }).publicUrl, 'http://localhost:8123');
  });

  test('an empty variable counts as unset', () => {
    const config = loadConfig({ PORT: '', TESSERA_MONGODB_URI: '', TESSERA_BOOTSTRAP_TOKEN: '', TESSERA_LOG_LEVEL: '' });
    assert.equal(config.port, 9000);
    assert.equal(config.mongodbUri, null);
    assert.equal(config.bootstrapToken, null);
    assert.equal(config.logLevel, 'info');
  });
});

describe('PORT', () => {
  test('a whole number from 0 to 65535 is taken', () => {
    assert.equal(loadConfig({ PORT: '1' }).port, 1);
    assert.equal(loadConfig({ PORT: '65535' }).port, 65535);
  });
  for (const bad of ['abc', '-1', '65536', ' ', '0x10', '1e3', '80.0', '9000 ']) {
    test(`PORT=${JSON.stringify(bad)} is refused`, () => {
      refuses({ PORT: bad }, 'PORT');
    });
  }
});

describe('HOST', () => {
  test('an address or host name is taken', () => {
    assert.equal(loadConfig({ HOST: '127.0.0.1' }).host, '127.0.0.1');
    assert.equal(loadConfig({ HOST: '::' }).host, '::');
    assert.equal(loadConfig({ HOST: 'localhost' }).host, 'localhost');
  });
  test('HOST with spaces is refused', () => {
    refuses({ HOST: ' ' }, 'HOST');
    refuses({ HOST: 'local host' }, 'HOST');
  });
});

describe('TESSERA_PUBLIC_URL', () => {
  test('an http(s) URL is taken without its trailing slash, path kept', () => {
    assert.equal(loadConfig({ TESSERA_PUBLIC_URL: 'https://id.example.com/' }).publicUrl, 'https://id.example.com');
    assert.equal(loadConfig({ TESSERA_PUBLIC_URL: 'https://example.com/tessera/' }).publicUrl, 'https://example.com/tessera');
    assert.equal(loadConfig({ TESSERA_PUBLIC_URL: 'http://localhost:9000' }).publicUrl, 'http://localhost:9000');
  });
  for (const bad of ['notaurl', 'ftp://example.com', 'http:/x', '//example.com', 'https://example.com/?a=b', 'https://example.com/#x']) {
    test(`TESSERA_PUBLIC_URL=${JSON.stringify(bad)} is refused`, () => {
      refuses({ TESSERA_PUBLIC_URL: bad }, 'TESSERA_PUBLIC_URL');
    });
  }
});

describe('TESSERA_MONGODB_URI and TESSERA_SECRET_KEY', () => {
  test('a mongodb:// or mongodb+srv:// URI with a secret key is taken', () => {
    const config = loadConfig({ TESSERA_MONGODB_URI: 'mongodb://db:27017/tessera', TESSERA_SECRET_KEY: SECRET });
    assert.equal(config.mongodbUri, 'mongodb://db:27017/tessera');
    assert.equal(config.secretKey, SECRET);
    assert.equal(loadConfig({ TESSERA_MONGODB_URI: 'mongodb+srv://c.example.net/t', TESSERA_SECRET_KEY: SECRET }).mongodbUri, 'mongodb+srv://c.example.net/t');
  });
  test('TESSERA_MONGODB_URI that is not a MongoDB URI is refused', () => {
    refuses({ TESSERA_MONGODB_URI: 'postgres://db/x', TESSERA_SECRET_KEY: SECRET }, 'TESSERA_MONGODB_URI');
  });
  test('TESSERA_MONGODB_URI without TESSERA_SECRET_KEY is refused, naming TESSERA_SECRET_KEY', () => {
    const error = refuses({ TESSERA_MONGODB_URI: 'mongodb://db:27017/tessera' }, 'TESSERA_SECRET_KEY');
    assert.match(error.message, /TESSERA_MONGODB_URI/);
  });
  test('a TESSERA_SECRET_KEY shorter than 32 characters is refused', () => {
    refuses({ TESSERA_SECRET_KEY: 'short' }, 'TESSERA_SECRET_KEY');
  });
  test('the error line never repeats a secret value', () => {
    const error = refuses({ TESSERA_SECRET_KEY: 'tooshort-secret' }, 'TESSERA_SECRET_KEY');
    assert.ok(!error.message.includes('tooshort-secret'));
    const token = refuses({ TESSERA_BOOTSTRAP_TOKEN: 'has space in it, long enough' }, 'TESSERA_BOOTSTRAP_TOKEN');
    assert.ok(!token.message.includes('has space'));
  });
});

describe('TESSERA_DATA_DIR', () => {
  test('a relative data dir is resolved against the working directory', () => {
    assert.equal(loadConfig({ TESSERA_DATA_DIR: 'some/dir' }).dataDir, path.resolve('some/dir'));
  });

  test('without TESSERA_SECRET_KEY the embedded store keeps a generated key (mode 600) in the data dir', async () => {
    await withTempDir('tessera-config-', async (dir) => {
      const config = loadConfig({ TESSERA_DATA_DIR: path.join(dir, 'nested') });
      const first = resolveSecretKey(config);
      assert.ok(first.length >= 32);
      const file = path.join(dir, 'nested', 'secret.key');
      assert.equal((await readFile(file, 'utf8')).trim(), first);
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      assert.equal(resolveSecretKey(config), first, 'the same key on the next start');
    });
  });

  test('TESSERA_SECRET_KEY wins over the kept key and writes nothing', async () => {
    await withTempDir('tessera-config-', async (dir) => {
      assert.equal(resolveSecretKey(loadConfig({ TESSERA_DATA_DIR: dir, TESSERA_SECRET_KEY: SECRET })), SECRET);
      await assert.rejects(stat(path.join(dir, 'secret.key')));
    });
  });

  test('a data dir that is a file is refused, naming TESSERA_DATA_DIR', async () => {
    await withTempDir('tessera-config-', async (dir) => {
      const file = path.join(dir, 'not-a-dir');
      await writeFile(file, 'x');
      assert.throws(() => resolveSecretKey(loadConfig({ TESSERA_DATA_DIR: file })), (error: unknown) =>
        error instanceof ConfigError && error.variable === 'TESSERA_DATA_DIR');
    });
  });

  test('a kept key that is too short is refused, naming TESSERA_SECRET_KEY', async () => {
    await withTempDir('tessera-config-', async (dir) => {
      await writeFile(path.join(dir, 'secret.key'), 'short\n');
      assert.throws(() => resolveSecretKey(loadConfig({ TESSERA_DATA_DIR: dir })), (error: unknown) =>
        error instanceof ConfigError && error.variable === 'TESSERA_SECRET_KEY');
    });
  });
});

describe('TESSERA_BOOTSTRAP_TOKEN and TESSERA_BOOTSTRAP_PASSWORD', () => {
  test('they are taken as given', () => {
    const config = loadConfig({ TESSERA_BOOTSTRAP_TOKEN: 'a-long-enough-token-123', TESSERA_BOOTSTRAP_PASSWORD: 'pass word 123' });
    assert.equal(config.bootstrapToken, 'a-long-enough-token-123');
    assert.equal(config.bootstrapPassword, 'pass word 123');
  });
  test('a bootstrap token shorter than 16 characters or with spaces is refused', () => {
    refuses({ TESSERA_BOOTSTRAP_TOKEN: 'short' }, 'TESSERA_BOOTSTRAP_TOKEN');
    refuses({ TESSERA_BOOTSTRAP_TOKEN: 'with a space inside it' }, 'TESSERA_BOOTSTRAP_TOKEN');
  });
  test('a bootstrap password shorter than 8 characters is refused', () => {
    refuses({ TESSERA_BOOTSTRAP_PASSWORD: 'short' }, 'TESSERA_BOOTSTRAP_PASSWORD');
  });
});

describe('TESSERA_LOG_LEVEL', () => {
  test('every pino level is taken', () => {
    for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const) {
      assert.equal(loadConfig({ TESSERA_LOG_LEVEL: level }).logLevel, level);
    }
  });
  test('TESSERA_LOG_LEVEL=loud is refused, listing the levels', () => {
    const error = refuses({ TESSERA_LOG_LEVEL: 'loud' }, 'TESSERA_LOG_LEVEL');
    assert.match(error.message, /fatal, error, warn, info, debug, trace, silent/);
  });
});

describe('the limits: TESSERA_SIGNIN_PER_ADDRESS and TESSERA_DEVICE_AUTHORIZATIONS_PER_MINUTE', () => {
  test('defaults are 100 failed sign-ins per address in 5 minutes and 60 device authorizations per address a minute', () => {
    const config = loadConfig({});
    assert.equal(config.signInPerAddress, 100);
    assert.equal(config.deviceAuthorizationsPerMinute, 60);
  });
  test('whole numbers from 1 are taken', () => {
    const config = loadConfig({ TESSERA_SIGNIN_PER_ADDRESS: '1', TESSERA_DEVICE_AUTHORIZATIONS_PER_MINUTE: '999999' });
    assert.equal(config.signInPerAddress, 1);
    assert.equal(config.deviceAuthorizationsPerMinute, 999999);
  });
  for (const bad of ['0', '-5', 'many', '1e3', '1000000']) {
    test(`${JSON.stringify(bad)} is refused`, () => {
      refuses({ TESSERA_SIGNIN_PER_ADDRESS: bad }, 'TESSERA_SIGNIN_PER_ADDRESS');
      refuses({ TESSERA_DEVICE_AUTHORIZATIONS_PER_MINUTE: bad }, 'TESSERA_DEVICE_AUTHORIZATIONS_PER_MINUTE');
    });
  }
});

describe('TESSERA_TRUST_PROXY', () => {
  test('none by default', () => {
    assert.deepEqual(loadConfig({}).trustProxy, []);
  });
  test('a comma-separated list of addresses and CIDR ranges, IPv4 and IPv6, spaces around commas allowed', () => {
    assert.deepEqual(loadConfig({ TESSERA_TRUST_PROXY: '10.0.0.1, 192.168.0.0/16,::1,fd00::/8' }).trustProxy, ['10.0.0.1', '192.168.0.0/16', '::1', 'fd00::/8']);
  });
  for (const bad of ['proxy.internal', '10.0.0.0/33', 'fd00::/129', '10.0.0.256', '10.0.0.0/', '10.0.0.0/8/8', '*']) {
    test(`${JSON.stringify(bad)} is refused`, () => {
      refuses({ TESSERA_TRUST_PROXY: bad }, 'TESSERA_TRUST_PROXY');
    });
  }
});
