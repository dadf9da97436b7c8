/**
 * Strict base64url (RFC 4648 §5, no padding), as JWS/JWT compact serialization requires.
 * Rejects padding, the standard alphabet's `+` and `/`, whitespace, a length of 1 mod 4,
 * and non-canonical encodings (trailing bits that are not zero), so that one byte string
 * has exactly one accepted spelling.
 */
const ALPHABET = /^[A-Za-z0-9_-]*$/;

export class Base64UrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Base64UrlError';
  }
}

export function decodeBase64UrlStrict(s: string): Buffer {
  if (!ALPHABET.test(s)) throw new Base64UrlError('base64url contains a character outside [A-Za-z0-9_-] (padding and whitespace are not allowed)');
  const rem = s.length % 4;
  if (rem === 1) throw new Base64UrlError('base64url length is impossible (1 mod 4)');
  const buf = Buffer.from(s, 'base64url');
  if (buf.toString('base64url') !== s) throw new Base64UrlError('base64url is not canonical (non-zero trailing bits)');
  return buf;
}

export function encodeBase64Url(b: Uint8Array | string): string {
  return Buffer.from(typeof b === 'string' ? Buffer.from(b, 'utf8') : b).toString('base64url');
}
