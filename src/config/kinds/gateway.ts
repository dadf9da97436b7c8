/**
 * ztmesh.io/v1alpha1 edge kinds, read by gateways:
 *  - RateLimitPolicy: Kong's rate-limiting plugin as a resource (windows, limitBy, local or
 *    Redis counters, fault tolerance, client headers).
 *  - GatewayPolicy: IP allow/deny, trusted proxies, request size limits and per-route
 *    token exchange.
 */
import { arr, bool, int, obj, str, strs } from '../schema.js';
import type { PathSeg } from '../schema.js';
import type { KindDef, Report } from './common.js';
import { ipOrCidrError, selectorSchema, validateSelector } from './common.js';
import type { Resource, WorkloadSelector } from '../types.js';

const ZTMESH_VERSIONS = ['ztmesh.io/v1alpha1'] as const;

/** Kong's windows, shortest first. `month` and `year` are calendar periods in UTC (their length varies). */
export const RATE_LIMIT_WINDOWS = ['second', 'minute', 'hour', 'day', 'month', 'year'] as const;
export type RateLimitWindow = (typeof RATE_LIMIT_WINDOWS)[number];
/** The windows of fixed length, in seconds (month and year are calendar periods: see gateway/rate-limit.ts). */
export const WINDOW_SECONDS: Record<'second' | 'minute' | 'hour' | 'day', number> = { second: 1, minute: 60, hour: 3600, day: 86400 };
export const LIMIT_BY = ['consumer', 'credential', 'ip', 'header', 'path', 'service'] as const;
export type LimitBy = (typeof LIMIT_BY)[number];

export interface RequestMatch {
  /** Request hosts (exact, or `*.suffix`); empty = any. */
  hosts?: string[];
  /** Path prefixes; empty = any. */
  paths?: string[];
}

export interface RateLimitPolicySpec {
  selector?: WorkloadSelector;
  match?: RequestMatch;
  limits: Partial<Record<RateLimitWindow, number>>;
  limitBy?: LimitBy;
  headerName?: string;
  /** For limitBy: path (Kong's `path`): requests to exactly this path are counted together; others by client IP. */
  path?: string;
  policy?: 'local' | 'redis';
  redis?: { host?: string; port?: number; password?: string; database?: number; timeout?: string; keyPrefix?: string };
  faultTolerant?: boolean;
  hideClientHeaders?: boolean;
  errorCode?: number;
  errorMessage?: string;
}

export interface GatewayPolicySpec {
  selector?: WorkloadSelector;
  ipAccess?: { allow?: string[]; deny?: string[] };
  /** Overrides MeshConfig numTrustedProxies for this gateway. */
  numTrustedProxies?: number;
  requestSize?: { maxBytes?: number; requireContentLength?: boolean };
  /** Exchange the verified end-user token for one minted for the destination service (RFC 8693 at the control plane). */
  tokenExchange?: { match?: RequestMatch; audience: string; header?: string }[];
}

export type RateLimitPolicy = Resource<'RateLimitPolicy', RateLimitPolicySpec>;
export type GatewayPolicy = Resource<'GatewayPolicy', GatewayPolicySpec>;

const matchSchema = obj({ hosts: strs, paths: strs });

function validateMatch(m: RequestMatch | undefined, path: PathSeg[], report: Report) {
  m?.paths?.forEach((p, i) => !p.startsWith('/') && report([...path, 'paths', i], `path prefix "${p}" must start with "/"`));
  m?.hosts?.forEach((h, i) => h === '' && report([...path, 'hosts', i], 'host must not be empty'));
}

const DURATION = /^[0-9]+(\.[0-9]+)?(ms|s|m|h)$/;

export const rateLimitPolicyKind: KindDef = {
  kind: 'RateLimitPolicy',
  apiVersions: ZTMESH_VERSIONS,
  spec: obj(
    {
      selector: selectorSchema,
      match: matchSchema,
      limits: obj(Object.fromEntries(RATE_LIMIT_WINDOWS.map((w) => [w, int(1)]))),
      limitBy: str({ enum: LIMIT_BY }),
      headerName: str(),
      path: str(),
      policy: str({ enum: ['local', 'redis'] }),
      redis: obj({ host: str(), port: int(1, 65535), password: str(), database: int(0, 15), timeout: str(), keyPrefix: str() }),
      faultTolerant: bool,
      hideClientHeaders: bool,
      errorCode: int(400, 599),
      errorMessage: str(),
    },
    ['limits'],
  ),
  validate(spec: RateLimitPolicySpec, report: Report) {
    const S: PathSeg[] = ['spec'];
    validateSelector(spec.selector, [...S, 'selector'], report);
    const set = RATE_LIMIT_WINDOWS.filter((w) => spec.limits?.[w] !== undefined);
    if (set.length === 0) report([...S, 'limits'], `at least one of ${RATE_LIMIT_WINDOWS.join(', ')} must be set`);
    // Kong: a longer window may not allow fewer requests than a shorter one.
    for (let i = 1; i < set.length; i++) {
      const a = set[i - 1];
      const b = set[i];
      if (spec.limits[b]! < spec.limits[a]!) report([...S, 'limits', b], `the limit for ${b} (${spec.limits[b]}) must not be smaller than the limit for ${a} (${spec.limits[a]})`);
    }
    if (spec.limitBy === 'header' && !spec.headerName) report([...S, 'headerName'], 'headerName is required when limitBy is header');
    if (spec.headerName !== undefined && !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(spec.headerName)) report([...S, 'headerName'], `"${spec.headerName}" is not a valid HTTP header name`);
    // Kong: `path` is required when limit_by is path, and is a path (starts with "/").
    if (spec.limitBy === 'path' && spec.path === undefined) report([...S, 'path'], 'path is required when limitBy is path');
    if (spec.path !== undefined && !spec.path.startsWith('/')) report([...S, 'path'], `path "${spec.path}" must start with "/"`);
    if (spec.policy === 'redis' && !spec.redis?.host) report([...S, 'redis', 'host'], 'redis.host is required when policy is redis');
    if (spec.redis?.timeout !== undefined && !DURATION.test(spec.redis.timeout)) report([...S, 'redis', 'timeout'], `"${spec.redis.timeout}" is not a duration (e.g. 200ms)`);
    validateMatch(spec.match, [...S, 'match'], report);
  },
};

export const gatewayPolicyKind: KindDef = {
  kind: 'GatewayPolicy',
  apiVersions: ZTMESH_VERSIONS,
  specOptional: true,
  spec: obj({
    selector: selectorSchema,
    ipAccess: obj({ allow: strs, deny: strs }),
    numTrustedProxies: int(0, 32),
    requestSize: obj({ maxBytes: int(0), requireContentLength: bool }),
    tokenExchange: arr(obj({ match: matchSchema, audience: str(), header: str() }, ['audience'])),
  }),
  validate(spec: GatewayPolicySpec, report: Report) {
    const S: PathSeg[] = ['spec'];
    validateSelector(spec.selector, [...S, 'selector'], report);
    for (const k of ['allow', 'deny'] as const) {
      spec.ipAccess?.[k]?.forEach((c, i) => {
        const e = ipOrCidrError(c);
        if (e) report([...S, 'ipAccess', k, i], e);
      });
    }
    spec.tokenExchange?.forEach((t, i) => {
      if (!t.audience) report([...S, 'tokenExchange', i, 'audience'], 'audience must not be empty');
      validateMatch(t.match, [...S, 'tokenExchange', i, 'match'], report);
    });
  },
};
