/** The client address behind proxies (TESSERA_TRUST_PROXY) and the key limits count it under. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clientAddressResolver } from '../../src/http/client-address.js';
import { addressKey } from '../../src/domain/rate-limits.js';

test('without trusted proxies the peer is the client, X-Forwarded-For or not', () => {
  const resolve = clientAddressResolver([]);
  assert.equal(resolve('10.0.0.1', '198.51.100.1'), '10.0.0.1');
  assert.equal(resolve('::ffff:10.0.0.1', undefined), '10.0.0.1', 'an IPv4 peer on a dual-stack socket is one address');
});

test('behind trusted proxies: the right-most entry that is not one of them', () => {
  const resolve = clientAddressResolver(['10.0.0.0/8', '2001:db8::1']);
  assert.equal(resolve('10.0.0.1', '198.51.100.1'), '198.51.100.1');
  assert.equal(resolve('10.0.0.1', '6.6.6.6, 198.51.100.1, 10.9.9.9'), '198.51.100.1', 'spoofed left-most entries are ignored');
  assert.equal(resolve('10.0.0.1', ['6.6.6.6, 198.51.100.2', '10.9.9.9']), '198.51.100.2', 'several headers are one list');
  assert.equal(resolve('2001:db8::1', '2001:db8:1::5'), '2001:db8:1::5');
  assert.equal(resolve('192.0.2.1', '198.51.100.1'), '192.0.2.1', 'an untrusted peer is the client');
  assert.equal(resolve('10.0.0.1', undefined), '10.0.0.1');
  assert.equal(resolve('10.0.0.1', '10.0.0.2'), '10.0.0.2', 'only proxies: the farthest one');
  assert.equal(resolve('10.0.0.1', 'garbage, 10.0.0.2'), '10.0.0.2', 'what is not an address ends the chain');
});

test('limits count IPv6 clients per /64, IPv4 clients per address', () => {
  assert.equal(addressKey('2001:db8:1:2:3:4:5:6'), addressKey('2001:db8:1:2:ffff::1'));
  assert.equal(addressKey('2001:0db8:0001:0002::9'), addressKey('2001:db8:1:2::1'));
  assert.notEqual(addressKey('2001:db8:1:2::1'), addressKey('2001:db8:1:3::1'));
  assert.equal(addressKey('::1'), addressKey('::2'));
  assert.equal(addressKey('fe80::1%eth0'), addressKey('fe80::2'));
  assert.notEqual(addressKey('192.0.2.1'), addressKey('192.0.2.2'));
});
