/**
 * The control plane's view of configuration: read a set of files and directories,
 * validate the whole set, keep the last good snapshot, and re-read on change.
 * An invalid set is refused with its errors; the last good one keeps serving.
 */
import { EventEmitter } from 'node:events';
import { readdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import { dirname, join } from 'node:path';
import { expandPaths, loadConfig } from '../config/load.js';
import type { ZtmError } from '../errors.js';
import { compile } from '../policy/snapshot.js';
import type { PolicySnapshot } from '../policy/snapshot.js';

export interface ConfigStatus {
  /** Version of the snapshot being served (null before the first good load). */
  version: string | null;
  loadedAt: string | null;
  /** Errors of the newest attempt when it was refused; empty when the newest load was good. */
  errors: { code: string; message: string; file?: string; line?: number; col?: number; field?: string }[];
  rejectedAt: string | null;
  notices: string[];
}

export interface ConfigStoreEvents {
  snapshot: [PolicySnapshot];
  rejected: [ZtmError[]];
}

export class ConfigStore extends EventEmitter<ConfigStoreEvents> {
  private current: PolicySnapshot | null = null;
  private status: ConfigStatus = { version: null, loadedAt: null, errors: [], rejectedAt: null, notices: [] };
  private readonly watchers = new Map<string, FSWatcher>();
  private poll?: NodeJS.Timeout;
  private debounce?: NodeJS.Timeout;
  private fingerprint = '';

  constructor(private readonly paths: string[]) {
    super();
  }

  snapshot(): PolicySnapshot | null {
    return this.current;
  }

  getStatus(): ConfigStatus {
    return this.status;
  }

  /** Read and validate now. Returns true when a new good snapshot was installed. */
  reload(): boolean {
    this.fingerprint = this.computeFingerprint();
    const res = loadConfig(this.paths);
    if (!res.ok) {
      this.status = { ...this.status, errors: res.errors.map((e) => e.toJSON() as ConfigStatus['errors'][number]), rejectedAt: new Date().toISOString() };
      this.emit('rejected', res.errors);
      return false;
    }
    const snap = compile(res.config);
    const changed = snap.version !== this.current?.version;
    this.current = snap;
    this.status = {
      version: snap.version,
      loadedAt: changed || !this.status.loadedAt ? new Date().toISOString() : this.status.loadedAt,
      errors: [],
      rejectedAt: null,
      notices: res.notices.map((n) => `${n.file}:${n.line}: ${n.message}`),
    };
    if (changed) this.emit('snapshot', snap);
    return changed;
  }

  /**
   * Watch the paths (fs events, with a polling fallback every `pollMs`). Each directory
   * of the tree, and the parent directory of each file path, is watched on its own,
   * not with `recursive: true`: Node 20's recursive watcher on Linux watches file inodes
   * and goes silent after the first atomic replace (write a temp file, rename it over
   * the old one: what editors, `kubectl cp` and ConfigMap volume swaps do), which left
   * only the 1 s poll and broke the "applies within a second" promise.
   */
  watch(pollMs = 1000): void {
    const trigger = () => {
      clearTimeout(this.debounce);
      this.debounce = setTimeout(() => {
        this.watchDirs(trigger);
        if (this.computeFingerprint() !== this.fingerprint) this.reload();
      }, 10); // coalesce the events of one edit (write + rename) without eating the propagation budget
    };
    this.watchDirs(trigger);
    this.poll = setInterval(trigger, pollMs);
    this.poll.unref();
  }

  /** (Re)attach a watcher to every directory that can hold a config file; drop vanished ones. */
  private watchDirs(trigger: () => void): void {
    const want = new Set<string>();
    const walk = (dir: string) => {
      want.add(dir);
      try {
        for (const ent of readdirSync(dir, { withFileTypes: true })) if (ent.isDirectory() && !ent.name.startsWith('.')) walk(join(dir, ent.name));
      } catch {
        // vanished meanwhile: the next trigger sees it
      }
    };
    for (const p of this.paths) {
      try {
        if (statSync(p).isDirectory()) walk(p);
        else want.add(dirname(p));
      } catch {
        // Missing paths are reported by reload(); the parent may see them appear.
        want.add(dirname(p));
      }
    }
    for (const [d, w] of this.watchers) {
      if (!want.has(d)) {
        w.close();
        this.watchers.delete(d);
      }
    }
    for (const d of want) {
      if (this.watchers.has(d)) continue;
      try {
        const w = watch(d, { persistent: false }, trigger);
        w.on('error', () => {
          w.close();
          if (this.watchers.get(d) === w) this.watchers.delete(d);
        });
        this.watchers.set(d, w);
      } catch {
        // not watchable (gone, or no permission): polling still covers it
      }
    }
  }

  close(): void {
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    clearInterval(this.poll);
    clearTimeout(this.debounce);
  }

  private computeFingerprint(): string {
    try {
      return expandPaths(this.paths)
        .map((f) => {
          const st = statSync(f);
          return `${f}:${st.size}:${st.mtimeMs}`;
        })
        .join('|');
    } catch (e) {
      return `error:${(e as Error).message}`;
    }
  }
}
