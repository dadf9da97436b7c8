/** networking.istio.io: ServiceEntry, DestinationRule, VirtualService, Gateway (structure and Istio's main rules). */
import { any, arr, bool, int, map, num, obj, str, strs } from '../schema.js';
import type { PathSeg } from '../schema.js';
import type { KindDef, Report } from './common.js';
import { isStrictIp, selectorSchema } from './common.js';
import type { DestinationRuleSpec, GatewaySpec, ServiceEntrySpec, VirtualServiceSpec } from '../types.js';

const NETWORKING_VERSIONS = ['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3'] as const;
const PROTOCOLS = ['HTTP', 'HTTPS', 'GRPC', 'GRPC-WEB', 'HTTP2', 'MONGO', 'TCP', 'TLS', 'UDP', 'REDIS', 'MYSQL'] as const;

/** A DNS name, optionally with a leading `*.` wildcard (Istio's ValidateWildcardDomain, simplified to RFC 1123 labels). */
export function hostError(h: string, allowStar = false): string | undefined {
  if (h === '*') return allowStar ? undefined : 'wildcard host * is not allowed here';
  const name = h.startsWith('*.') ? h.slice(2) : h;
  if (name.length === 0 || name.length > 255) return `"${h}" is not a valid host name`;
  for (const label of name.split('.')) {
    if (!/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(label)) return `"${h}" is not a valid host name (label "${label}")`;
  }
  return undefined;
}

const portSchema = obj({ number: int(1, 65535), protocol: str({ enum: PROTOCOLS }), name: str(), targetPort: int(1, 65535) }, ['number']);

export const serviceEntryKind: KindDef = {
  kind: 'ServiceEntry',
  apiVersions: NETWORKING_VERSIONS,
  spec: obj(
    {
      hosts: strs,
      addresses: strs,
      ports: arr(portSchema),
      location: str({ enum: ['MESH_EXTERNAL', 'MESH_INTERNAL'] }),
      resolution: str({ enum: ['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN'] }),
      endpoints: arr(
        obj({ address: str(), ports: map(int(1, 65535)), labels: map(str()), network: str(), locality: str(), weight: int(0), serviceAccount: str() }),
      ),
      workloadSelector: obj({ labels: map(str()) }),
      exportTo: strs,
      subjectAltNames: strs,
    },
    ['hosts'],
  ),
  validate(spec: ServiceEntrySpec, report: Report) {
    const S: PathSeg[] = ['spec'];
    if (!spec.hosts?.length) report([...S, 'hosts'], 'ServiceEntry must have at least one host');
    spec.hosts?.forEach((h, i) => {
      const e = hostError(h);
      if (e) report([...S, 'hosts', i], e);
    });
    spec.addresses?.forEach((a, i) => {
      const ip = a.split('/')[0];
      if (!isStrictIp(ip)) report([...S, 'addresses', i], `"${a}" is not an IP address or CIDR`);
    });
    const names = new Set<string>();
    spec.ports?.forEach((p, i) => {
      if (p.name !== undefined) {
        if (names.has(p.name)) report([...S, 'ports', i, 'name'], `port name "${p.name}" is used twice`);
        names.add(p.name);
      }
    });
    if (spec.resolution === 'STATIC' && !spec.workloadSelector) {
      if (!spec.endpoints?.length) report([...S, 'endpoints'], 'endpoints must be provided when resolution is STATIC');
      spec.endpoints?.forEach((e, i) => {
        if (!e.address) report([...S, 'endpoints', i, 'address'], 'endpoint address is required when resolution is STATIC');
        else if (!isStrictIp(e.address) && !e.address.startsWith('unix://')) report([...S, 'endpoints', i, 'address'], `endpoint address "${e.address}" must be an IP address when resolution is STATIC`);
      });
    }
    if (spec.workloadSelector && spec.endpoints?.length) report([...S, 'workloadSelector'], 'only one of endpoints or workloadSelector can be set');
  },
};

const tlsSettings = obj({
  mode: str({ enum: ['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL'] }),
  clientCertificate: str(),
  privateKey: str(),
  caCertificates: str(),
  credentialName: str(),
  subjectAltNames: strs,
  sni: str(),
  insecureSkipVerify: bool,
});
const trafficPolicy = obj({
  loadBalancer: obj({ simple: str({ enum: ['UNSPECIFIED', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST'] }), consistentHash: any, localityLbSetting: any, warmupDurationSecs: str() }),
  connectionPool: obj({ tcp: any, http: any }),
  outlierDetection: obj({
    consecutiveErrors: int(0),
    consecutiveGatewayErrors: int(0),
    consecutive5xxErrors: int(0),
    interval: str(),
    baseEjectionTime: str(),
    maxEjectionPercent: int(0, 100),
    minHealthPercent: int(0, 100),
    splitExternalLocalOriginErrors: bool,
    consecutiveLocalOriginFailures: int(0),
  }),
  tls: tlsSettings,
  portLevelSettings: arr(any),
  tunnel: any,
  proxyProtocol: any,
});

export const destinationRuleKind: KindDef = {
  kind: 'DestinationRule',
  apiVersions: NETWORKING_VERSIONS,
  spec: obj(
    {
      host: str(),
      trafficPolicy,
      subsets: arr(obj({ name: str(), labels: map(str()), trafficPolicy }, ['name'])),
      exportTo: strs,
      workloadSelector: selectorSchema,
    },
    ['host'],
  ),
  validate(spec: DestinationRuleSpec, report: Report) {
    const e = spec.host ? hostError(spec.host, true) : undefined;
    if (e) report(['spec', 'host'], e);
    const seen = new Set<string>();
    spec.subsets?.forEach((s, i) => {
      if (seen.has(s.name)) report(['spec', 'subsets', i, 'name'], `duplicate subset name "${s.name}"`);
      seen.add(s.name);
    });
  },
};

const stringMatch = obj({ exact: str(), prefix: str(), regex: str() });
const destination = obj({ host: str(), subset: str(), port: obj({ number: int(1, 65535) }) }, ['host']);
const httpRoute = obj({
  name: str(),
  match: arr(
    obj({
      name: str(),
      uri: stringMatch,
      scheme: stringMatch,
      method: stringMatch,
      authority: stringMatch,
      headers: map(stringMatch),
      withoutHeaders: map(stringMatch),
      port: int(1, 65535),
      sourceLabels: map(str()),
      gateways: strs,
      queryParams: map(stringMatch),
      ignoreUriCase: bool,
      sourceNamespace: str(),
    }),
  ),
  route: arr(obj({ destination, weight: int(0, 100), headers: any })),
  redirect: any,
  directResponse: any,
  delegate: obj({ name: str(), namespace: str() }),
  rewrite: obj({ uri: str(), authority: str(), uriRegexRewrite: any }),
  timeout: str(),
  retries: obj({ attempts: int(0), perTryTimeout: str(), retryOn: str(), retryRemoteLocalities: bool }),
  fault: obj({
    delay: obj({ fixedDelay: str(), percentage: obj({ value: num }), percent: int(0, 100) }),
    abort: obj({ httpStatus: int(200, 599), grpcStatus: str(), percentage: obj({ value: num }) }),
  }),
  mirror: destination,
  mirrorPercentage: obj({ value: num }),
  mirrors: arr(any),
  corsPolicy: any,
  headers: any,
});

function checkDuration(v: string | undefined, path: PathSeg[], report: Report) {
  if (v !== undefined && !/^[0-9]+(\.[0-9]+)?(ms|s|m|h)$/.test(v)) report(path, `"${v}" is not a duration (e.g. 500ms, 5s)`);
}

export const virtualServiceKind: KindDef = {
  kind: 'VirtualService',
  apiVersions: NETWORKING_VERSIONS,
  spec: obj({ hosts: strs, gateways: strs, http: arr(httpRoute), tls: arr(any), tcp: arr(any), exportTo: strs }),
  validate(spec: VirtualServiceSpec, report: Report) {
    const S: PathSeg[] = ['spec'];
    if (!spec.hosts?.length && spec.gateways?.length) report([...S, 'gateways'], 'delegate virtual service must have no gateways specified');
    const appliesToMesh = !spec.gateways?.length || spec.gateways.includes('mesh');
    spec.hosts?.forEach((h, i) => {
      if (h === '*' && appliesToMesh) report([...S, 'hosts', i], 'wildcard host * is not allowed for virtual services bound to the mesh gateway');
      else if (h !== '*') {
        const e = hostError(h);
        if (e && !isStrictIp(h)) report([...S, 'hosts', i], e);
      }
    });
    if (!spec.http?.length && !spec.tcp?.length && !spec.tls?.length) report(S, 'http, tcp or tls must be provided in virtual service');
    spec.http?.forEach((r: any, i) => {
      const R: PathSeg[] = [...S, 'http', i];
      const kinds = [r.route, r.redirect, r.directResponse, r.delegate].filter((x) => x !== undefined && x !== null).length;
      if (kinds === 0) report(R, 'HTTP route must have one of route, redirect, directResponse or delegate');
      if (r.route && r.redirect) report(R, 'HTTP route cannot contain both route and redirect');
      if (r.route?.length > 1) {
        const sum = r.route.reduce((a: number, d: any) => a + (d.weight ?? 0), 0);
        if (sum !== 100 && r.route.some((d: any) => d.weight !== undefined)) report([...R, 'route'], `total destination weight ${sum} != 100`);
      }
      r.route?.forEach((d: any, j: number) => {
        const e = d.destination?.host ? hostError(d.destination.host) : undefined;
        if (e) report([...R, 'route', j, 'destination', 'host'], e);
      });
      checkDuration(r.timeout, [...R, 'timeout'], report);
      checkDuration(r.retries?.perTryTimeout, [...R, 'retries', 'perTryTimeout'], report);
      checkDuration(r.fault?.delay?.fixedDelay, [...R, 'fault', 'delay', 'fixedDelay'], report);
      r.match?.forEach((m: any, j: number) => {
        for (const f of ['uri', 'scheme', 'method', 'authority'] as const) {
          const sm = m[f];
          if (sm && Object.keys(sm).length !== 1) report([...R, 'match', j, f], 'a string match must set exactly one of exact, prefix, regex');
        }
      });
    });
  },
};

export const gatewayKind: KindDef = {
  kind: 'Gateway',
  apiVersions: NETWORKING_VERSIONS,
  spec: obj(
    {
      selector: map(str()),
      servers: arr(
        obj(
          {
            port: obj({ number: int(1, 65535), protocol: str({ enum: PROTOCOLS }), name: str(), targetPort: int(1, 65535) }, ['number', 'protocol']),
            bind: str(),
            hosts: strs,
            tls: obj({
              httpsRedirect: bool,
              mode: str({ enum: ['PASSTHROUGH', 'SIMPLE', 'MUTUAL', 'AUTO_PASSTHROUGH', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL'] }),
              serverCertificate: str(),
              privateKey: str(),
              caCertificates: str(),
              credentialName: str(),
              credentialNames: strs,
              subjectAltNames: strs,
              minProtocolVersion: str(),
              maxProtocolVersion: str(),
              cipherSuites: strs,
            }),
            name: str(),
            defaultEndpoint: str(),
          },
          ['port', 'hosts'],
        ),
      ),
    },
    ['servers'],
  ),
  validate(spec: GatewaySpec, report: Report) {
    if (!spec.servers?.length) report(['spec', 'servers'], 'gateway must have at least one server');
    spec.servers?.forEach((s: any, i) => {
      if (!s.hosts?.length) report(['spec', 'servers', i, 'hosts'], 'server config must contain at least one host');
      s.hosts?.forEach((h: string, j: number) => {
        const bare = h.includes('/') ? h.slice(h.indexOf('/') + 1) : h;
        const e = hostError(bare, true);
        if (e) report(['spec', 'servers', i, 'hosts', j], e);
      });
    });
  },
};
