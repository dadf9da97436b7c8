/**
 * Typed errors with stable codes. Every error a user can meet carries a `code`
 * (documented in docs/errors.md), a message that says what to do, and where it
 * applies the file, line, column and field path it is about.
 */
export const ErrorCodes = {
  ZTM_CONFIG_INVALID: 'a configuration document breaks a validation rule',
  ZTM_CONFIG_PARSE: 'a configuration file is not valid YAML',
  ZTM_CONFIG_IO: 'a configuration file or directory could not be read',
  ZTM_USAGE: 'a command was called with wrong or missing arguments',
  ZTM_INPUT_INVALID: 'an input document (request, JSON line) is malformed',
  ZTM_AUTHZ_DENIED: 'a request was denied by authorization policy',
  ZTM_PATH_INVALID: 'a request path cannot be normalized safely (400)',
  ZTM_SPIFFE_ID_INVALID: 'a SPIFFE ID breaks the SPIFFE-ID standard',
  ZTM_SVID_INVALID: 'an X.509-SVID or JWT-SVID failed verification',
  ZTM_CA: 'the certificate authority could not complete an operation',
  ZTM_TOKEN_INVALID: 'a join token is unknown, expired or already used',
  ZTM_CERT_DENIED: 'the control plane refused a server certificate for a DNS name no Gateway grants the caller',
  ZTM_REGO_PARSE: 'a Rego module has a syntax error',
  ZTM_REGO_COMPILE: 'a Rego module failed to compile',
  ZTM_REGO_EVAL: 'a Rego evaluation raised an error',
  ZTM_INTERNAL: 'an internal invariant failed (a bug: please report it)',
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export interface SourcePosition {
  file?: string;
  line?: number;
  col?: number;
  /** Dotted field path inside the document, e.g. `spec.rules[0].from[1].source.principals`. */
  field?: string;
}

export class ZtmError extends Error {
  readonly code: ErrorCode;
  readonly position: SourcePosition;
  readonly details?: unknown;

  constructor(code: ErrorCode, message: string, position: SourcePosition = {}, details?: unknown) {
    super(message);
    this.name = 'ZtmError';
    this.code = code;
    this.position = position;
    this.details = details;
  }

  /** `file:line:col field.path: message`, omitting the parts that are unknown. */
  format(): string {
    return formatPositioned(this.position, this.message);
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, ...this.position };
  }
}

export function formatPositioned(p: SourcePosition, message: string): string {
  let loc = '';
  if (p.file) {
    loc = p.file;
    if (p.line !== undefined) {
      loc += `:${p.line}`;
      if (p.col !== undefined) loc += `:${p.col}`;
    }
  }
  const parts = [loc, p.field].filter((s) => s !== undefined && s !== '');
  return parts.length ? `${parts.join(' ')}: ${message}` : message;
}

export function isZtmError(e: unknown): e is ZtmError {
  return e instanceof ZtmError;
}
