/**
 * The gateway's route table, compiled from the Istio Gateways that select it and the
 * VirtualServices bound to them (`gateways:`): by request host (exact or `*.suffix`, also
 * checked against the Gateway servers' hosts) and then the first HTTP route whose match
 * (uri exact/prefix/regex, method, headers) fits. Pure and built once per configuration.
 */
import type { Gateway, VirtualService } from '../config/types.js';
import { selectorMatches } from '../policy/select.js';

type StringMatch = { exact?: string; prefix?: string; regex?: string };

interface CompiledMatch {
  uri?: (p: string) => boolean;
  method?: (m: string) => boolean;
  headers: [string, (v: string | undefined) => boolean][];
}

export interface RouteDestination {
  host: string;
  port?: number;
  weight: number;
}

export interface CompiledRoute {
  /** `namespace/virtualservice#index` (or its name). */
  name: string;
  vsNamespace: string;
  hosts: string[];
  matches: CompiledMatch[];
  destinations: RouteDestination[];
  /** Prefix rewrite: the matched prefix is replaced by this. */
  rewriteUri?: { prefix?: string; value: string };
  directResponse?: { status: number; body?: string };
}

export interface RouteTable {
  /** Hosts the bound Gateways serve (server.hosts without namespace part). */
  serverHosts: string[];
  routes: CompiledRoute[];
}

function stringMatcher(m: StringMatch | undefined, ignoreCase = false): ((v: string) => boolean) | undefined {
  if (!m) return undefined;
  if (m.exact !== undefined) return ignoreCase ? (v) => v.toLowerCase() === m.exact!.toLowerCase() : (v) => v === m.exact;
  if (m.prefix !== undefined) return ignoreCase ? (v) => v.toLowerCase().startsWith(m.prefix!.toLowerCase()) : (v) => v.startsWith(m.prefix!);
  if (m.regex !== undefined) {
    const re = new RegExp(`^(?:${m.regex})$`, ignoreCase ? 'i' : '');
    return (v) => re.test(v);
  }
  return undefined;
}

/** `pattern` (`*`, `*.example.com`, exact) matches `host` (lower case, no port). */
export function hostMatches(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase();
  if (p === '*') return true;
  if (p.startsWith('*.')) return host.endsWith(p.slice(1)) && host.length > p.length - 1;
  return p === host;
}

/**
 * The Istio Gateways whose `selector` picks a workload with `labels`. A Gateway without a
 * selector (or an empty one) selects nothing here: an edge is always chosen explicitly.
 */
export function gatewaysSelecting(resources: readonly { kind: string }[], labels: Record<string, string>): Gateway[] {
  return resources.filter((r): r is Gateway => r.kind === 'Gateway').filter((g) => !!g.spec.selector && Object.keys(g.spec.selector).length > 0 && selectorMatches(g.spec.selector, labels));
}

/** A Gateway server's `hosts` entry without its namespace part (`ns/host`, `./host` → `host`; `*` as the namespace too). */
export function serverHostName(entry: string): string {
  return entry.includes('/') ? entry.slice(entry.indexOf('/') + 1) : entry;
}

/** Every `hosts` entry of every server of `g`, namespace part removed. */
export function gatewayServerHosts(g: Gateway): string[] {
  return g.spec.servers.flatMap((s) => ((s as { hosts?: string[] }).hosts ?? []).map(serverHostName));
}

/**
 * A destination host as Istio reads it: a short name (no dot) is relative to the
 * VirtualService's namespace (`reviews` in `bookinfo` → `reviews.bookinfo.svc.cluster.local`);
 * a name with a dot is taken as written.
 */
export function qualifyHost(host: string, namespace: string): string {
  const h = host.toLowerCase();
  return h.includes('.') || h.includes('*') ? h : `${h}.${namespace}.svc.cluster.local`;
}

export function compileRoutes(resources: readonly { kind: string }[], labels: Record<string, string>): RouteTable {
  const gws = gatewaysSelecting(resources, labels);
  const names = new Set(gws.map((g) => `${g.metadata.namespace}/${g.metadata.name}`));
  const serverHosts = [...new Set(gws.flatMap(gatewayServerHosts))];
  const routes: CompiledRoute[] = [];
  const vss = resources
    .filter((r): r is VirtualService => r.kind === 'VirtualService')
    .filter((v) => (v.spec.gateways ?? []).some((g) => names.has(g.includes('/') ? g : `${v.metadata.namespace}/${g}`)))
    .sort((a, b) => a.seq - b.seq);
  for (const vs of vss) {
    (vs.spec.http ?? []).forEach((h: Record<string, any>, i) => {
      const matches: CompiledMatch[] = ((h.match as Record<string, any>[] | undefined) ?? [{}]).map((m) => ({
        uri: stringMatcher(m.uri, !!m.ignoreUriCase),
        method: stringMatcher(m.method),
        headers: Object.entries((m.headers ?? {}) as Record<string, StringMatch>).map(([k, sm]) => {
          const f = stringMatcher(sm);
          return [k.toLowerCase(), (v: string | undefined) => v !== undefined && (!f || f(v))] as [string, (v: string | undefined) => boolean];
        }),
      }));
      const rewritePrefix = (h.match as Record<string, any>[] | undefined)?.find((m) => m.uri?.prefix !== undefined)?.uri?.prefix as string | undefined;
      routes.push({
        name: `${vs.metadata.namespace}/${vs.metadata.name}${h.name ? `/${h.name}` : `#${i}`}`,
        vsNamespace: vs.metadata.namespace,
        hosts: (vs.spec.hosts ?? ['*']).map((x) => x.toLowerCase()),
        matches,
        destinations: ((h.route ?? []) as { destination: { host: string; port?: { number: number } }; weight?: number }[]).map((d) => ({
          host: qualifyHost(d.destination.host, vs.metadata.namespace),
          port: d.destination.port?.number,
          weight: d.weight ?? 100,
        })),
        rewriteUri: h.rewrite?.uri !== undefined ? { prefix: rewritePrefix, value: h.rewrite.uri as string } : undefined,
        directResponse: h.directResponse ? { status: Number(h.directResponse.status ?? 200), body: h.directResponse.body?.string } : undefined,
      });
    });
  }
  return { serverHosts, routes };
}

export interface RouteMatch {
  route: CompiledRoute;
  destination: RouteDestination | null;
  /** The path to send upstream (after rewrite), query included. */
  path: string;
}

/** The route for a request, or null (404). `pathOnly` excludes the query. */
export function matchRoute(t: RouteTable, req: { host: string; method: string; pathOnly: string; query: string; headers: Record<string, string | string[] | undefined> }, random = Math.random): RouteMatch | null {
  const host = req.host;
  if (t.serverHosts.length && !t.serverHosts.some((p) => hostMatches(p, host))) return null;
  for (const r of t.routes) {
    if (!r.hosts.some((p) => hostMatches(p, host))) continue;
    const ok = r.matches.some(
      (m) =>
        (!m.uri || m.uri(req.pathOnly)) &&
        (!m.method || m.method(req.method)) &&
        m.headers.every(([k, f]) => {
          const v = req.headers[k];
          return f(Array.isArray(v) ? v.join(',') : v);
        }),
    );
    if (!ok) continue;
    let path = req.pathOnly;
    if (r.rewriteUri) {
      if (r.rewriteUri.prefix !== undefined && path.startsWith(r.rewriteUri.prefix)) path = r.rewriteUri.value + path.slice(r.rewriteUri.prefix.length);
      else if (r.rewriteUri.prefix === undefined) path = r.rewriteUri.value;
      if (!path.startsWith('/')) path = '/' + path;
      path = path.replace(/^\/\/+/, '/');
    }
    return { route: r, destination: pickWeighted(r.destinations, random), path: path + req.query };
  }
  return null;
}

function pickWeighted(ds: RouteDestination[], random: () => number): RouteDestination | null {
  if (ds.length === 0) return null;
  if (ds.length === 1) return ds[0];
  const total = ds.reduce((a, d) => a + d.weight, 0);
  let x = random() * total;
  for (const d of ds) {
    x -= d.weight;
    if (x < 0) return d;
  }
  return ds[ds.length - 1];
}
