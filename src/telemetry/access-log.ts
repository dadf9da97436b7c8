/** One JSON line per request, written without blocking the request path. */
import type { Writable } from 'node:stream';

export interface AccessLogEntry {
  time: string;
  direction: 'inbound' | 'outbound';
  source_principal: string | null;
  destination_principal: string | null;
  method: string;
  path: string;
  status: number;
  decision: 'ALLOW' | 'DENY' | 'ERROR' | 'EGRESS';
  policy: string | null;
  reason?: string;
  mtls: boolean;
  duration_ms: number;
  upstream?: string;
  request_id?: string;
}

export class AccessLog {
  /** False when logging is off: callers skip building the record. */
  readonly enabled: boolean;

  constructor(private readonly out: Writable | null) {
    this.enabled = out !== null;
  }

  write(e: AccessLogEntry): void {
    this.out?.write(JSON.stringify(e) + '\n');
  }
}
