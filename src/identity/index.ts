/**
 * `ztmesh/identity`: SPIFFE IDs, the CA, X.509-SVID issue/verify/rotate, trust
 * bundles, join tokens, JWT-SVIDs and the strict JWS parser.
 */

export {
  parseSpiffeId,
  isValidSpiffeId,
  parseTrustDomain,
  spiffeIdFromParts,
  workloadSpiffeId,
  parseWorkloadId,
  spiffeIdToPrincipal,
  principalToSpiffeId,
  memberOf,
  SPIFFE_ID_MAX_BYTES,
  TRUST_DOMAIN_MAX_BYTES,
  type SpiffeId,
  type SpiffeIdRule,
  type WorkloadIdentity,
} from './spiffe-id.js';

export {
  CertificateAuthority,
  createRootCa,
  createIntermediateCa,
  initCa,
  importCa,
  loadCa,
  loadCaRoots,
  summarizeCa,
  caPaths,
  checkCsr,
  DEFAULT_SVID_TTL_MS,
  MAX_SVID_TTL_MS,
  ROOT_TTL_MS,
  INTERMEDIATE_TTL_MS,
  type CaCertificate,
  type IssuedSvid,
  type IssuedServerCertificate,
  type IssueOptions,
  type CaSummary,
} from './ca.js';

export { sealPrivateKey, openPrivateKey, resolvePassphrase } from './keystore.js';
export { IdentityAuthority } from './authority.js';
export {
  JoinTokenStore,
  JsonFileTokenBackend,
  MemoryTokenBackend,
  parseDuration,
  tokenStorePath,
  type TokenBackend,
  type TokenRejectReason,
  type CreatedToken,
  type Attestation,
} from './join-token.js';

export {
  verifySvidChain,
  checkLeaf,
  peerIdentity,
  IntermediateCache,
  SVID_REJECT_REASONS,
  type SvidRejectReason,
  type SvidVerifyResult,
  type VerifyOptions,
  type CertInput,
} from './verify.js';

export { normalizeDnsName, normalizeDnsNames, parseDnsNamesFlag, verifyServerCertChain, MAX_SERVER_CERT_NAMES, type ServerCertVerifyResult } from './server-cert.js';

export { TlsSessionIdentities, type SessionOffer } from './tls-session.js';

export { BundleSet, certFingerprint, spiffeBundleDocument, parseSpiffeBundle, type TrustBundle, type BundleSource, type JwtAuthority, type SpiffeBundleDocument } from './bundle.js';

export { SvidRotator, systemClock, loadPersistedCredential, type Clock, type CurrentSvid, type SvidIssuer, type IssueRequest, type RotatorOptions } from './rotation.js';

export {
  parseCompactJws,
  verifyCompactJws,
  verifyJwsSignature,
  signCompactJws,
  checkJwtClaims,
  keyMismatch,
  JwsError,
  JWS_REJECT_REASONS,
  ASYMMETRIC_ALGORITHMS,
  DEFAULT_MAX_TOKEN_LENGTH,
  type JwsRejectReason,
  type JwsAlgorithm,
  type ParsedJws,
  type ParseOptions,
  type JwsVerifyResult,
  type KeyResolver,
  type ClaimsOptions,
  type ClaimsResult,
  type ClaimsRejectReason,
} from './jws.js';
export { parseStrictJson, StrictJsonError, type JsonValue } from './strict-json.js';

export {
  issueJwtSvid,
  verifyJwtSvid,
  createJwtSigner,
  jwksDocument,
  jwkThumbprint,
  loadOrCreateJwtSigner,
  DEFAULT_JWT_SVID_TTL_MS,
  MAX_JWT_SVID_TTL_MS,
  type JwtSigner,
  type JwtSvidVerifyResult,
  type JwtSvidRejectReason,
  type JwksDocument,
} from './jwt-svid.js';

export { buildCsr, parseCsr, parseCertificate, toPem, pemCertificates, pemBlocks, nameToString, type ParsedCertificate, type CsrInfo } from './x509.js';
