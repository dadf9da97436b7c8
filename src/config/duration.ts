/**
 * Durations as Istio's resources take them: a `google.protobuf.Duration` written as a string and
 * checked by the CRD rule `duration(self) >= duration('1ms')` (CEL durations: Go's
 * time.ParseDuration syntax, a sequence of decimal numbers each with a unit `h`, `m`, `s`, `ms`,
 * `us`/`µs` or `ns`, e.g. `5s`, `1.5s`, `500ms`, `1m30s`).
 */

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 1e-3, 'µs': 1e-3, ns: 1e-6 };
const PART = /([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(h|ms|m|s|us|µs|ns)/y;

/** Milliseconds for a duration string, or undefined when it is not one. */
export function parseIstioDuration(text: string): number | undefined {
  if (typeof text !== 'string' || text === '') return undefined;
  let i = 0;
  let ms = 0;
  while (i < text.length) {
    PART.lastIndex = i;
    const m = PART.exec(text);
    if (!m) return undefined;
    ms += Number(m[1]) * UNIT_MS[m[2]];
    i = PART.lastIndex;
  }
  return Number.isFinite(ms) ? ms : undefined;
}

/** Istio's rule for every Duration field: a valid duration of at least 1 ms. Returns the problem, if any. */
export function istioDurationError(text: string): string | undefined {
  const ms = parseIstioDuration(text);
  if (ms === undefined || ms < 1) return `"${text}" must be a valid duration greater than 1ms (e.g. 5s, 500ms)`;
  return undefined;
}
