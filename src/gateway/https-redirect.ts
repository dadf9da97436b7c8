/**
 * Istio Gateway `servers[].tls.httpsRedirect: true` on the gateway's plain HTTP listener.
 * Istio sets Envoy's `require_tls: ALL` on those hosts' virtual host; Envoy then answers every
 * plaintext request for them with **301** and `Location: https://<Host><path>` (the request's
 * Host and path as received, query included: Http::Utility::createSslRedirectPath).
 *
 * Port: Envoy copies the Host header verbatim, port included, which sends a client that named
 * the HTTP port (`shop.example.com:8080`) to HTTPS on the HTTP port. ztmesh keeps the Host
 * verbatim when it has no port (the client used the default port: HTTPS on 443 is the
 * default port too); `:80` is dropped (https on 443); any other port is replaced by this
 * gateway's HTTPS listener port, the port HTTPS is actually served on.
 *
 * Pure; the hosts are compiled once per configuration.
 */
import { gatewaysSelecting, hostMatches, serverHostName } from './routes.js';

/** The hosts (`*`, `*.suffix`, exact; namespace part removed) of every server with `tls.httpsRedirect: true` of the Gateways selecting `labels`. */
export function compileHttpsRedirectHosts(resources: readonly { kind: string }[], labels: Record<string, string>): string[] {
  const hosts = new Set<string>();
  for (const g of gatewaysSelecting(resources, labels)) {
    for (const s of g.spec.servers as { hosts?: string[]; tls?: { httpsRedirect?: boolean } }[]) {
      if (s.tls?.httpsRedirect !== true) continue;
      for (const h of s.hosts ?? []) hosts.add(serverHostName(h).toLowerCase());
    }
  }
  return [...hosts];
}

/**
 * The `Location` for a plaintext request that must move to HTTPS, or null when its host is
 * not one of `hosts`. `hostHeader` is the request's Host as sent, `target` its request target
 * (path and query as received), `httpsPort` the gateway's HTTPS listener port.
 */
export function httpsRedirectLocation(hosts: readonly string[], hostHeader: string, target: string, httpsPort: number): string | null {
  if (hosts.length === 0 || !hostHeader) return null;
  const m = /^(\[[^\]]*\]|[^:]*)(?::([0-9]*))?$/.exec(hostHeader);
  if (!m) return null;
  const name = m[1];
  const bare = name.toLowerCase().replace(/\.$/, '');
  if (!hosts.some((p) => hostMatches(p, bare))) return null;
  const port = m[2];
  const authority = port === undefined || port === '' || port === '80' ? name : `${name}:${httpsPort}`;
  let path = target;
  if (!path.startsWith('/')) {
    // absolute-form (`GET http://host/path HTTP/1.1`): keep its path and query
    try {
      const u = new URL(target);
      path = u.pathname + u.search;
    } catch {
      path = '/';
    }
  }
  return `https://${authority}${path}`;
}
