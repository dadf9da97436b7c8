/**
 * Request-path normalization matching Istio's MeshConfig `pathNormalization`
 * modes as they are applied by Envoy's HTTP connection manager.
 *
 * See docs/path-normalization.md for the behaviour table and the sources it
 * was derived from. In short, for an origin-form request-target Envoy does,
 * in this order (ConnectionManagerUtility::maybeNormalizePath):
 *
 *   1. strip everything from the first `#` (fragment) — in every mode;
 *   2. if `path_with_escaped_slashes_action` is UNESCAPE_AND_FORWARD (Istio:
 *      DECODE_AND_MERGE_SLASHES only), replace `%2F`/`%2f` with `/` and
 *      `%5C`/`%5c` with `\` in the path part (before `?`);
 *   3. if `normalize_path` (Istio: every mode except NONE), run the Chromium
 *      URL path canonicalizer on the path part (before `?`): `\` -> `/`,
 *      dot segments (also spelt `%2e`) removed, percent-encoded unreserved
 *      characters decoded, other valid escapes kept byte-for-byte (hex case
 *      untouched), invalid escapes passed through, characters that are not
 *      allowed in a path percent-encoded, and `%00` rejected;
 *   4. if `merge_slashes` (Istio: MERGE_SLASHES, DECODE_AND_MERGE_SLASHES),
 *      collapse repeated `/` in the path part.
 *
 * The query string is never altered; it is returned separately.
 */

export type PathNormalizationMode = 'NONE' | 'BASE' | 'MERGE_SLASHES' | 'DECODE_AND_MERGE_SLASHES';

export type NormalizeResult =
  | { ok: true; path: string; query: string /* including leading '?' or '' */ }
  | { ok: false; status: 400; reason: string };

// ---------------------------------------------------------------------------
// Character classes of the Chromium path canonicalizer (kPathCharLookup in
// Envoy's snapshot source/common/chromium_url/url_canon_path.cc).

/** Needs handling beyond a plain copy. */
const SPECIAL = 1;
/** Must be percent-encoded in the canonical output (implies SPECIAL). */
const ESCAPE = 2 | SPECIAL;
/** A `%XX` encoding of this character is decoded (unreserved characters). */
const UNESCAPE = 4;
/** Disallowed: canonicalization fails (implies SPECIAL). Only NUL. */
const INVALID = 8 | SPECIAL;

const CHAR_FLAGS: Uint8Array = (() => {
  const t = new Uint8Array(256);
  t[0x00] = INVALID;
  for (let c = 0x01; c <= 0x20; c++) t[c] = ESCAPE; // controls and space
  for (const ch of '"#%<>?\\^`{|}') t[ch.charCodeAt(0)] = ESCAPE;
  t[0x7f] = ESCAPE;
  for (let c = 0x80; c <= 0xff; c++) t[c] = ESCAPE;
  t[0x2e] = SPECIAL; // '.' — dot segments
  // RFC 3986 unreserved: ALPHA / DIGIT / "-" / "_" / "~" ("." handled above).
  for (let c = 0x30; c <= 0x39; c++) t[c] = UNESCAPE;
  for (let c = 0x41; c <= 0x5a; c++) t[c] = UNESCAPE;
  for (let c = 0x61; c <= 0x7a; c++) t[c] = UNESCAPE;
  t[0x2d] = UNESCAPE;
  t[0x5f] = UNESCAPE;
  t[0x7e] = UNESCAPE;
  // Everything else (! $ & ' ( ) * + , / : ; = @ [ ]) passes through.
  return t;
})();

const HEX_UPPER = '0123456789ABCDEF';

const CH_PERCENT = 0x25;
const CH_DOT = 0x2e;
const CH_SLASH = 0x2f;
const CH_BACKSLASH = 0x5c;
const CH_QUESTION = 0x3f;
const CH_HASH = 0x23;

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

function isUrlSlash(c: number): boolean {
  return c === CH_SLASH || c === CH_BACKSLASH;
}

/** Length of a dot at `i` (`.` = 1, `%2e`/`%2E` = 3) or 0 (Chromium IsDot). */
function dotLength(s: string, i: number, end: number): number {
  const c = s.charCodeAt(i);
  if (c === CH_DOT) return 1;
  if (c === CH_PERCENT && i + 3 <= end && s.charCodeAt(i + 1) === 0x32) {
    const e = s.charCodeAt(i + 2);
    if (e === 0x65 || e === 0x45) return 3;
  }
  return 0;
}

// ---------------------------------------------------------------------------
// Output buffer for the canonicalizer. The canonical output is pure ASCII
// (every byte >= 0x80 is percent-encoded), so one byte per output character.
// The buffer is module-scoped scratch space: normalizePath is synchronous and
// never re-entered, so reusing it avoids a per-request allocation.

let out: Buffer = Buffer.allocUnsafe(1024);
let outLen = 0;

function ensure(extra: number): void {
  if (outLen + extra > out.length) {
    const bigger = Buffer.allocUnsafe(Math.max(out.length * 2, outLen + extra));
    out.copy(bigger, 0, 0, outLen);
    out = bigger;
  }
}

function push(c: number): void {
  if (outLen === out.length) ensure(1);
  out[outLen++] = c;
}

function pushEscaped(byte: number): void {
  ensure(3);
  out[outLen++] = CH_PERCENT;
  out[outLen++] = HEX_UPPER.charCodeAt(byte >> 4);
  out[outLen++] = HEX_UPPER.charCodeAt(byte & 0xf);
}

/** Chromium BackUpToPreviousSlash: output ends in '/', drop the last segment. */
function backUpToPreviousSlash(): void {
  let i = outLen - 1;
  if (i === 0) return; // at the leading slash: ".." above the root is ignored
  i--;
  while (i > 0 && out[i] !== CH_SLASH) i--;
  outLen = i + 1;
}

/**
 * Chromium CheckForNestedEscapes: after decoding an escape that lands within
 * two characters of an earlier '%' that did not start a valid escape, make
 * sure the output does not now contain a valid escape that the input did not
 * (e.g. "%%30%30" must not become "%00"); if it would, that '%' becomes "%25".
 */
function checkForNestedEscapes(s: string, next: number, end: number, lastInvalidPercent: number): void {
  const length = outLen;
  const lastUnescaped = out[length - 1]!;
  const appendNext = lastInvalidPercent === length - 2;
  if (appendNext) {
    if (next === end) return;
    const nc = s.charCodeAt(next);
    if (nc >= 0x80) return;
    push(nc);
  }
  if (
    lastInvalidPercent + 3 <= outLen &&
    hexValue(out[lastInvalidPercent + 1]!) >= 0 &&
    hexValue(out[lastInvalidPercent + 2]!) >= 0
  ) {
    if (!appendNext) push(out[lastInvalidPercent + 1]!);
    out[lastInvalidPercent + 1] = 0x32; // '2'
    out[lastInvalidPercent + 2] = 0x35; // '5'
    push(lastUnescaped);
  } else if (appendNext) {
    outLen = length;
  }
}

/**
 * Encodes the code point starting at `i` (a UTF-16 code unit above 0xFF) as
 * percent-encoded UTF-8. Returns the number of code units consumed, or 0 for
 * a lone surrogate.
 */
function pushEscapedUtf8(s: string, i: number): number {
  const cp = s.codePointAt(i)!;
  if (cp >= 0xd800 && cp <= 0xdfff) return 0; // lone surrogate
  if (cp < 0x800) {
    pushEscaped(0xc0 | (cp >> 6));
    pushEscaped(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    pushEscaped(0xe0 | (cp >> 12));
    pushEscaped(0x80 | ((cp >> 6) & 0x3f));
    pushEscaped(0x80 | (cp & 0x3f));
  } else {
    pushEscaped(0xf0 | (cp >> 18));
    pushEscaped(0x80 | ((cp >> 12) & 0x3f));
    pushEscaped(0x80 | ((cp >> 6) & 0x3f));
    pushEscaped(0x80 | (cp & 0x3f));
  }
  return cp > 0xffff ? 2 : 1;
}

const CANON_OK = 0;
const CANON_HAS_NUL = 1;
const CANON_BAD_UNICODE = 2;
type Canon = typeof CANON_OK | typeof CANON_HAS_NUL | typeof CANON_BAD_UNICODE;

/**
 * Envoy `normalize_path`: Chromium CanonicalizePath over s[0, end). The input
 * starts with '/' (checked by the caller). The result is left in `out`.
 */
function canonicalize(s: string, end: number): Canon {
  outLen = 0;
  ensure(end + 1);
  let lastInvalidPercent = -10; // "none"; far enough below any output index
  let result: Canon = CANON_OK;

  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) {
      const used = pushEscapedUtf8(s, i);
      if (used === 0) return CANON_BAD_UNICODE;
      i += used - 1;
      continue;
    }
    const flags = CHAR_FLAGS[c]!;
    if ((flags & SPECIAL) === 0) {
      push(c);
      continue;
    }

    const dotLen = dotLength(s, i, end);
    if (dotLen > 0) {
      if (outLen > 0 && out[outLen - 1] === CH_SLASH) {
        // A dot right after a slash: classify "." / ".." segments.
        const after = i + dotLen;
        if (after === end) {
          i = after - 1; // "/." at the end: current directory
        } else if (isUrlSlash(s.charCodeAt(after))) {
          i = after; // "/./": current directory, slash consumed
        } else {
          const second = dotLength(s, after, end);
          const afterSecond = after + second;
          if (second > 0 && afterSecond === end) {
            backUpToPreviousSlash(); // "/.." at the end
            i = afterSecond - 1;
          } else if (second > 0 && isUrlSlash(s.charCodeAt(afterSecond))) {
            backUpToPreviousSlash(); // "/../"
            i = afterSecond;
          } else {
            push(CH_DOT); // e.g. "/.x", "/...": an ordinary segment
            i += dotLen - 1;
          }
        }
      } else {
        push(CH_DOT); // a dot inside a segment ("%2e" is decoded too)
        i += dotLen - 1;
      }
    } else if (c === CH_BACKSLASH) {
      push(CH_SLASH);
    } else if (c === CH_PERCENT) {
      const hi = i + 2 < end ? hexValue(s.charCodeAt(i + 1)) : -1;
      const lo = hi >= 0 ? hexValue(s.charCodeAt(i + 2)) : -1;
      if (lo >= 0) {
        const value = (hi << 4) | lo;
        const vflags = CHAR_FLAGS[value]!;
        if (vflags & UNESCAPE) {
          push(value);
          i += 2;
          if (lastInvalidPercent >= outLen - 3) {
            checkForNestedEscapes(s, i + 1, end, lastInvalidPercent);
          }
        } else {
          // Kept exactly as received (hex digit case preserved).
          ensure(3);
          out[outLen++] = CH_PERCENT;
          out[outLen++] = s.charCodeAt(i + 1);
          out[outLen++] = s.charCodeAt(i + 2);
          i += 2;
          if (vflags === INVALID) result = CANON_HAS_NUL;
        }
      } else {
        // Invalid escape: passed through unchanged (permissive, like Envoy).
        lastInvalidPercent = outLen;
        push(CH_PERCENT);
      }
    } else if (flags === INVALID) {
      pushEscaped(c);
      result = CANON_HAS_NUL;
    } else {
      pushEscaped(c); // ESCAPE
    }
  }
  return result;
}

/** Envoy `merge_slashes` (PathTransformer::mergeSlashes) on a path part. */
function mergeSlashes(path: string): string {
  if (path.indexOf('//') < 0) return path;
  // Envoy rebuilds the path as prefix + non-empty segments joined by '/' +
  // suffix, so a path made only of slashes ("//", "///") becomes "//".
  let allSlashes = true;
  for (let i = 0; i < path.length; i++) {
    if (path.charCodeAt(i) !== CH_SLASH) {
      allSlashes = false;
      break;
    }
  }
  if (allSlashes) return '//';
  let merged = '';
  let runStart = 0;
  for (let i = 0; i < path.length; i++) {
    if (path.charCodeAt(i) === CH_SLASH && i > 0 && path.charCodeAt(i - 1) === CH_SLASH) {
      merged += path.slice(runStart, i);
      runStart = i + 1;
    }
  }
  return merged + path.slice(runStart);
}

/**
 * Envoy `path_with_escaped_slashes_action: UNESCAPE_AND_FORWARD`: %2F/%2f to
 * '/', %5C/%5c to '\' (PathUtil::unescapeSlashes).
 */
function unescapeSlashes(path: string): string {
  let i = path.indexOf('%');
  if (i < 0) return path;
  let result = '';
  let copied = 0;
  for (; i >= 0 && i + 2 < path.length; i = path.indexOf('%', i + 1)) {
    const d = path.charCodeAt(i + 1);
    const x = path.charCodeAt(i + 2);
    let repl = '';
    if (d === 0x32 && (x === 0x46 || x === 0x66)) repl = '/';
    else if (d === 0x35 && (x === 0x43 || x === 0x63)) repl = '\\';
    else continue;
    result += path.slice(copied, i) + repl;
    copied = i + 3;
    i += 2;
  }
  return copied === 0 ? path : result + path.slice(copied);
}

/** True if the path part would come out of `canonicalize` unchanged. */
function isAlreadyCanonical(s: string, end: number): boolean {
  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) return false;
    if (CHAR_FLAGS[c]! & SPECIAL) {
      // A dot inside a segment is copied as-is; one after '/' may start a
      // dot segment.
      if (c !== CH_DOT || s.charCodeAt(i - 1) === CH_SLASH) return false;
    }
  }
  return true;
}

function hasEncodedNul(s: string, end: number): boolean {
  for (let i = s.indexOf('%'); i >= 0 && i + 2 < end; i = s.indexOf('%', i + 1)) {
    if (s.charCodeAt(i + 1) === 0x30 && s.charCodeAt(i + 2) === 0x30) return true;
  }
  return false;
}

function reject(reason: string): NormalizeResult {
  return { ok: false, status: 400, reason };
}

/**
 * Normalizes an origin-form HTTP request-target the way Istio's sidecar
 * (Envoy) does for the given `pathNormalization` mode. The returned `path` is
 * what AuthorizationPolicy `paths`/`notPaths` are matched against; the proxy
 * forwards `path + query` upstream.
 *
 * `rawTarget` is the request-target as received, one UTF-16 code unit per
 * octet (latin1 decoding, as Node's HTTP parser produces). Code units above
 * 0xFF are treated as Unicode text and percent-encoded as UTF-8 by the
 * normalizing modes.
 */
export function normalizePath(rawTarget: string, mode: PathNormalizationMode = 'BASE'): NormalizeResult {
  const len = rawTarget.length;
  if (len === 0) return reject('empty request-target');
  if (rawTarget.charCodeAt(0) !== CH_SLASH) {
    // Envoy answers non-origin-form paths (absolute-form that was not
    // converted, '*', relative paths) with a local reply before any
    // normalization; ztmesh rejects them with 400.
    return reject('request-target is not in origin-form (must start with "/")');
  }

  // Codec-level validation (HTTP/1 parsers and HTTP/2 :path validation both
  // refuse these octets) and fragment / query boundaries, in one scan.
  let fragment = -1;
  let queryStart = -1;
  for (let i = 0; i < len; i++) {
    const c = rawTarget.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return reject('request-target contains a control character or space');
    if (c === CH_HASH && fragment < 0) fragment = i;
    else if (c === CH_QUESTION && queryStart < 0 && fragment < 0) queryStart = i;
  }
  const end = fragment < 0 ? len : fragment; // Envoy strips the fragment in every mode
  const pathEnd = queryStart < 0 ? end : queryStart;
  const query = queryStart < 0 ? '' : rawTarget.slice(queryStart, end);

  if (mode === 'NONE') {
    // Istio documents "%00" as always rejected; Envoy's check for it lives in
    // the canonicalizer, which NONE does not run, so it is checked here.
    if (hasEncodedNul(rawTarget, pathEnd)) return reject('path contains percent-encoded NUL (%00)');
    for (let i = 0; i < pathEnd; i++) {
      const c = rawTarget.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdfff) {
        if (rawTarget.codePointAt(i)! <= 0xffff) return reject('path contains a lone UTF-16 surrogate');
        i++;
      }
    }
    return { ok: true, path: rawTarget.slice(0, pathEnd), query };
  }

  let path = rawTarget.slice(0, pathEnd);
  if (mode === 'DECODE_AND_MERGE_SLASHES') path = unescapeSlashes(path);

  if (!isAlreadyCanonical(path, path.length)) {
    const r = canonicalize(path, path.length);
    if (r === CANON_HAS_NUL) return reject('path contains percent-encoded NUL (%00)');
    if (r === CANON_BAD_UNICODE) return reject('path contains a lone UTF-16 surrogate');
    path = out.toString('latin1', 0, outLen);
  }

  if (mode === 'MERGE_SLASHES' || mode === 'DECODE_AND_MERGE_SLASHES') path = mergeSlashes(path);

  return { ok: true, path, query };
}
