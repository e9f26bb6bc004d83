// Internal helpers for IP ranges; not exported from index.ts.
import { BlockList, isIP } from 'node:net';

/** Why `cidr` is not an IPv4 or IPv6 CIDR block, or undefined when it is. */
export function cidrProblem(cidr: string): string | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr);
  if (!m) return `'${cidr}' is not a CIDR block (address/prefix)`;
  const family = isIP(m[1]);
  if (family === 0) return `'${m[1]}' in '${cidr}' is not an IP address`;
  const max = family === 4 ? 32 : 128;
  if (Number(m[2]) > max) return `prefix /${m[2]} of '${cidr}' is longer than /${max}`;
  return undefined;
}

/** True when the IP address `ip` lies in the (valid) block `cidr`; node's BlockList does the bit arithmetic. */
export function cidrContains(cidr: string, ip: string): boolean {
  const [net, prefix] = cidr.split('/');
  const family = isIP(net) === 6 ? 'ipv6' : 'ipv4';
  if (isIP(ip) !== isIP(net)) return false;
  const list = new BlockList();
  list.addSubnet(net, Number(prefix), family);
  return list.check(ip, family);
}
