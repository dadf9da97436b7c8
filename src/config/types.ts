/** Typed resource documents, as Istio (and ztmesh.io/v1alpha1) define them. */

export interface SourceRef {
  file: string;
  line: number;
  col: number;
  /** Index of the document within its file (0-based). */
  doc: number;
}

export interface ObjectMeta {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  creationTimestamp?: string;
}

export interface Resource<K extends string = string, S = unknown> {
  apiVersion: string;
  kind: K;
  metadata: ObjectMeta;
  spec: S;
  source: SourceRef;
  /** Load order across the whole set: the tie-breaker after creationTimestamp. */
  seq: number;
}

export interface WorkloadSelector {
  matchLabels?: Record<string, string>;
}

// ---- security.istio.io ----
export interface IstioSource {
  principals?: string[];
  notPrincipals?: string[];
  requestPrincipals?: string[];
  notRequestPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  serviceAccounts?: string[];
  notServiceAccounts?: string[];
  ipBlocks?: string[];
  notIpBlocks?: string[];
  remoteIpBlocks?: string[];
  notRemoteIpBlocks?: string[];
}

export interface IstioOperation {
  hosts?: string[];
  notHosts?: string[];
  ports?: string[];
  notPorts?: string[];
  methods?: string[];
  notMethods?: string[];
  paths?: string[];
  notPaths?: string[];
}

export interface IstioCondition {
  key: string;
  values?: string[];
  notValues?: string[];
}

export interface IstioRule {
  from?: { source?: IstioSource }[];
  to?: { operation?: IstioOperation }[];
  when?: IstioCondition[];
}

export type AuthzAction = 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';

export interface AuthorizationPolicySpec {
  selector?: WorkloadSelector;
  rules?: IstioRule[];
  action?: AuthzAction;
  provider?: { name?: string };
}

export type MtlsMode = 'UNSET' | 'DISABLE' | 'PERMISSIVE' | 'STRICT';

export interface PeerAuthenticationSpec {
  selector?: WorkloadSelector;
  mtls?: { mode?: MtlsMode };
  portLevelMtls?: Record<string, { mode?: MtlsMode }>;
}

export interface JwtHeader {
  name: string;
  prefix?: string;
}

export interface JwtRule {
  issuer?: string;
  audiences?: string[];
  jwksUri?: string;
  jwks?: string;
  fromHeaders?: JwtHeader[];
  fromParams?: string[];
  fromCookies?: string[];
  outputPayloadToHeader?: string;
  outputClaimToHeaders?: { header: string; claim: string }[];
  forwardOriginalToken?: boolean;
  timeout?: string;
}

export interface RequestAuthenticationSpec {
  selector?: WorkloadSelector;
  jwtRules?: JwtRule[];
}

// ---- networking.istio.io (parsed and validated; used by the mesh) ----
export interface ServiceEntrySpec {
  hosts: string[];
  addresses?: string[];
  ports?: { number: number; protocol?: string; name?: string; targetPort?: number }[];
  location?: 'MESH_EXTERNAL' | 'MESH_INTERNAL';
  resolution?: 'NONE' | 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN';
  endpoints?: { address?: string; ports?: Record<string, number>; labels?: Record<string, string>; network?: string; locality?: string; weight?: number; serviceAccount?: string }[];
  workloadSelector?: { labels?: Record<string, string> };
  exportTo?: string[];
  subjectAltNames?: string[];
}

export interface DestinationRuleSpec {
  host: string;
  trafficPolicy?: Record<string, unknown>;
  subsets?: { name: string; labels?: Record<string, string>; trafficPolicy?: Record<string, unknown> }[];
  exportTo?: string[];
  workloadSelector?: WorkloadSelector;
}

export interface VirtualServiceSpec {
  hosts?: string[];
  gateways?: string[];
  http?: Record<string, unknown>[];
  tls?: Record<string, unknown>[];
  tcp?: Record<string, unknown>[];
  exportTo?: string[];
}

export interface GatewaySpec {
  selector?: Record<string, string>;
  servers: Record<string, unknown>[];
}

// ---- ztmesh.io/v1alpha1 ----
export type PathNormalizationMode = 'NONE' | 'BASE' | 'MERGE_SLASHES' | 'DECODE_AND_MERGE_SLASHES';

export interface ExtensionProvider {
  name: string;
  rego?: {
    modules: string[];
    decision?: string;
    data?: string;
    /** Module sources and data, read when the config is loaded (and shipped to sidecars with it). */
    bundle?: { modules: Record<string, string>; data?: unknown };
  };
  opa?: { url: string; path?: string; timeout?: string; failOpen?: boolean };
  envoyExtAuthzHttp?: Record<string, unknown>;
  envoyExtAuthzGrpc?: Record<string, unknown>;
}

export interface MeshConfigSpec {
  trustDomain?: string;
  rootNamespace?: string;
  pathNormalization?: { normalization?: PathNormalizationMode };
  outboundTrafficPolicy?: { mode?: 'REGISTRY_ONLY' | 'ALLOW_ANY' };
  extensionProviders?: ExtensionProvider[];
  numTrustedProxies?: number;
}

/** The effective mesh settings, with defaults applied. */
export interface MeshSettings {
  trustDomain: string;
  rootNamespace: string;
  pathNormalization: PathNormalizationMode;
  outboundTrafficPolicy: 'REGISTRY_ONLY' | 'ALLOW_ANY';
  extensionProviders: ExtensionProvider[];
  numTrustedProxies: number;
}

export const DEFAULT_MESH: MeshSettings = Object.freeze({
  trustDomain: 'cluster.local',
  rootNamespace: 'istio-system',
  pathNormalization: 'BASE',
  outboundTrafficPolicy: 'REGISTRY_ONLY',
  extensionProviders: [],
  numTrustedProxies: 0,
}) as MeshSettings;

export type AuthorizationPolicy = Resource<'AuthorizationPolicy', AuthorizationPolicySpec>;
export type PeerAuthentication = Resource<'PeerAuthentication', PeerAuthenticationSpec>;
export type RequestAuthentication = Resource<'RequestAuthentication', RequestAuthenticationSpec>;
export type ServiceEntry = Resource<'ServiceEntry', ServiceEntrySpec>;
export type DestinationRule = Resource<'DestinationRule', DestinationRuleSpec>;
export type VirtualService = Resource<'VirtualService', VirtualServiceSpec>;
export type Gateway = Resource<'Gateway', GatewaySpec>;
export type MeshConfig = Resource<'MeshConfig', MeshConfigSpec>;

export type AnyResource =
  | AuthorizationPolicy
  | PeerAuthentication
  | RequestAuthentication
  | ServiceEntry
  | DestinationRule
  | VirtualService
  | Gateway
  | MeshConfig;
