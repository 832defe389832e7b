/**
 * The client address every limit and event uses. Without TESSERA_TRUST_PROXY it is the peer of
 * the TCP connection, whatever X-Forwarded-For says (anyone can send that header). With it, a
 * request whose peer is a trusted proxy is from the right-most X-Forwarded-For entry that is not
 * itself a trusted proxy: each proxy appends the address it saw, so the entries to the left of
 * the last untrusted one were written by the client and prove nothing.
 */
import { BlockList, isIP } from 'node:net';

export interface ClientAddressResolver {
  (peer: string | undefined, forwardedFor: string | string[] | undefined): string;
}

/** `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) is 10.0.0.1, so limits see one address, not two spellings. */
function plain(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

function trustedSet(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const slash = entry.indexOf('/');
    const address = plain(slash === -1 ? entry : entry.slice(0, slash));
    const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (slash === -1) list.addAddress(address, type);
    else list.addSubnet(address, Number(entry.slice(slash + 1)), type);
  }
  return list;
}

export function clientAddressResolver(trustProxy: readonly string[]): ClientAddressResolver {
  if (trustProxy.length === 0) return (peer) => plain(peer ?? '');
  const trusted = trustedSet(trustProxy);
  const isTrusted = (address: string): boolean => {
    const family = isIP(address);
    return family !== 0 && trusted.check(address, family === 6 ? 'ipv6' : 'ipv4');
  };
  return (peer, forwardedFor) => {
    let address = plain(peer ?? '');
    if (!isTrusted(address) || forwardedFor === undefined) return address;
    // Several X-Forwarded-For headers are one list, in order (RFC 9110 §5.3).
    const entries = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',');
    for (let i = entries.length - 1; i >= 0; i -= 1) {
      const entry = plain(entries[i]!.trim());
      // Something that is not an address (a typo, "unknown", a port) ends the chain: what is left of it cannot be believed.
      if (isIP(entry) === 0) return address;
      address = entry;
      if (!isTrusted(entry)) return entry;
    }
    return address;
  };
}
