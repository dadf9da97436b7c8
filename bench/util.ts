/** Small helpers shared by the benchmarks: timing, medians and a result table. */
import { performance } from 'node:perf_hooks';

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** Median time per call in nanoseconds: `rounds` batches of `batch` calls, after a warm-up. */
export function nsPerCall(fn: () => unknown, batch = 10_000, rounds = 25): number {
  for (let i = 0; i < batch * 3; i++) fn();
  const per: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    for (let i = 0; i < batch; i++) fn();
    per.push(((performance.now() - t0) * 1e6) / batch);
  }
  return median(per);
}

export function timeMs(fn: () => unknown): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

export function printTable(title: string, headers: string[], rows: (string | number)[][]): void {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const w = headers.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  console.log(`\n${title}`);
  for (const r of cells) console.log(r.map((c, i) => c.padEnd(w[i])).join('  '));
}

/** The mesh benches' base policy for namespace `ns`: STRICT mTLS and default deny. */
export function policyDocs(ns: string): string {
  return `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: ${ns}}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: ${ns}}
spec: {}
`;
}

/** The data-plane benches' one ALLOW: the client's sidecar may POST to the server's /echo. */
export const SERVER_ALLOW_CLIENT = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: server-allow-client, namespace: bench}
spec:
  selector: {matchLabels: {app: server}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/bench/sa/client"]}}]
    to: [{operation: {methods: ["POST"], paths: ["/echo", "/echo/*"]}}]
`;
