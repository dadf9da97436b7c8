/** Workloads known to the control plane: registered by their sidecars, removed when gone. */
import type { Registration } from './protocol.js';

export interface WorkloadRecord extends Registration {
  id: string;
  spiffeId: string;
  connectedAt: string;
  lastHeartbeat: number;
  /** Version last sent, and the last the sidecar ACKed or NACKed. */
  sentVersion: string | null;
  appliedVersion: string | null;
  nack: { version: string; error: string; at: string } | null;
  connected: boolean;
}

export class Registry {
  private readonly workloads = new Map<string, WorkloadRecord>();
  private gen = 0;

  add(id: string, spiffeId: string, reg: Registration): WorkloadRecord {
    const rec: WorkloadRecord = {
      ...reg,
      id,
      spiffeId,
      connectedAt: new Date().toISOString(),
      lastHeartbeat: Date.now(),
      sentVersion: null,
      appliedVersion: reg.lastVersion ?? null,
      nack: null,
      connected: true,
    };
    this.workloads.set(id, rec);
    this.gen++;
    return rec;
  }

  remove(id: string): boolean {
    const ok = this.workloads.delete(id);
    if (ok) this.gen++;
    return ok;
  }

  get(id: string): WorkloadRecord | undefined {
    return this.workloads.get(id);
  }

  all(): WorkloadRecord[] {
    return [...this.workloads.values()];
  }

  /** Changes whenever endpoints change (registration or removal). */
  generation(): number {
    return this.gen;
  }

  /** Records whose heartbeat is older than `maxAgeMs`. */
  stale(now: number, maxAgeMs: number): WorkloadRecord[] {
    return this.all().filter((w) => now - w.lastHeartbeat > maxAgeMs);
  }
}
