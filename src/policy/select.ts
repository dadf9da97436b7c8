/** Workload selection shared by every policy kind. */
import type { Resource } from '../config/types.js';

/** A selector with no labels selects every workload in scope. */
export function selectorMatches(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!selector) return true;
  for (const k in selector) if (labels[k] !== selector[k]) return false;
  return true;
}

/** Oldest first (creationTimestamp, then load order): Istio's tie-breaker. */
export function olderFirst(a: Resource, b: Resource): number {
  const ta = a.metadata.creationTimestamp ? Date.parse(a.metadata.creationTimestamp) : Number.POSITIVE_INFINITY;
  const tb = b.metadata.creationTimestamp ? Date.parse(b.metadata.creationTimestamp) : Number.POSITIVE_INFINITY;
  if (ta !== tb) return ta < tb ? -1 : 1;
  return a.seq - b.seq;
}

const labelKeys = new WeakMap<object, string>();

/** A stable cache key for a workload's identity in policy selection (memoized per labels object). */
export function workloadKey(namespace: string, labels: Record<string, string>): string {
  let lk = labelKeys.get(labels);
  if (lk === undefined) {
    lk = '';
    for (const k of Object.keys(labels).sort()) lk += `\u0000${k}=${labels[k]}`;
    // Only frozen label sets are memoized: a mutable object could change under the key.
    if (Object.isFrozen(labels)) labelKeys.set(labels, lk);
  }
  return namespace + lk;
}
