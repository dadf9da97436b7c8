/**
 * The control plane's config watcher must notice edits by file-system events, not by its
 * 1 s polling fallback, or "a policy change applies within one second" cannot hold.
 * Editors, `kubectl cp` and ConfigMap volumes replace files atomically (write a temp
 * file, rename it over the old one); Node 20's `recursive: true` watcher on Linux goes
 * silent after the first such replace. Polling is switched off here (60 s) so only
 * events can make these pass.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigStore } from '../../src/control/config-store.js';
import { repoRoot } from '../helpers.js';
import { tempDir, writeConfig } from './harness.js';

const examples = join(repoRoot, 'examples', 'ecommerce', 'policies');

function nextEvent(store: ConfigStore, timeoutMs: number): Promise<'snapshot' | 'rejected' | 'timeout'> {
  return new Promise((resolve) => {
    const done = (what: 'snapshot' | 'rejected' | 'timeout') => {
      clearTimeout(t);
      store.off('snapshot', onSnap);
      store.off('rejected', onRej);
      resolve(what);
    };
    const onSnap = () => done('snapshot');
    const onRej = () => done('rejected');
    const t = setTimeout(() => done('timeout'), timeoutMs);
    store.on('snapshot', onSnap);
    store.on('rejected', onRej);
  });
}

test('config watcher: every atomic replace, new subdirectory and single-file path is seen by events (no polling)', async () => {
  const dir = tempDir('watch');
  const cfg = join(dir, 'config');
  const store = new ConfigStore([cfg]);
  const single = new ConfigStore([join(cfg, '00-mtls.yaml')]);
  try {
    mkdirSync(cfg);
    copyFileSync(join(examples, '00-mtls.yaml'), join(cfg, '00-mtls.yaml'));
    const payment = readFileSync(join(examples, '20-payment-service.yaml'), 'utf8');
    const tighter = payment.replace('"/api/v1/charges", "/api/v1/refunds"', '"/api/v1/charges"');
    assert.notEqual(tighter, payment);
    writeConfig(cfg, '20-payment-service.yaml', payment);
    assert.ok(store.reload());
    assert.ok(single.reload());
    store.watch(60_000);
    single.watch(60_000);
    const times: number[] = [];
    for (let i = 0; i < 4; i++) {
      const t0 = Date.now();
      const ev = nextEvent(store, 2000);
      writeConfig(cfg, '20-payment-service.yaml', i % 2 === 0 ? tighter : payment);
      assert.equal(await ev, 'snapshot', `atomic replace #${i + 1} was not noticed within 2 s`);
      times.push(Date.now() - t0);
    }
    // A subdirectory created after the watch started, then a file in it.
    mkdirSync(join(cfg, 'team-a'));
    await new Promise((r) => setTimeout(r, 200));
    let ev = nextEvent(store, 2000);
    copyFileSync(join(examples, '01-deny-all.yaml'), join(cfg, 'team-a', '01-deny-all.yaml'));
    assert.equal(await ev, 'snapshot', 'a file in a new subdirectory was not noticed');
    ev = nextEvent(store, 2000);
    writeConfig(join(cfg, 'team-a'), '01-deny-all.yaml', 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: x, namespace: production}\nspec: {action: NOPE}\n');
    assert.equal(await ev, 'rejected', 'an invalid replace in a subdirectory was not noticed');
    // A single file given as the path, replaced atomically.
    ev = nextEvent(single, 2000);
    writeConfig(cfg, '00-mtls.yaml', readFileSync(join(examples, '00-mtls.yaml'), 'utf8').replace('mode: STRICT', 'mode: PERMISSIVE'));
    assert.equal(await ev, 'snapshot', 'an atomic replace of a single config file was not noticed');
    console.log(`# config watcher: atomic replaces noticed in ${times.join(', ')} ms`);
  } finally {
    store.close();
    single.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('config watcher: a Kubernetes ConfigMap volume update (the ..data symlink swapped to a new directory) is seen by events', async () => {
  // kubelet's layout: <dir>/..2026_01_01_00_00_00.1/<files>, <dir>/..data -> that dir, <dir>/<file> -> ..data/<file>.
  const dir = tempDir('watch-cm');
  const vol = join(dir, 'config');
  const store = new ConfigStore([vol]);
  try {
    mkdirSync(vol);
    const payment = readFileSync(join(examples, '20-payment-service.yaml'), 'utf8');
    const version = (n: number, text: string) => {
      const d = join(vol, `..ts_${n}`);
      mkdirSync(d);
      writeFileSync(join(d, 'payment.yaml'), text);
      symlinkSync(`..ts_${n}`, join(vol, `..data_tmp`));
      renameSync(join(vol, '..data_tmp'), join(vol, '..data'));
    };
    version(1, payment);
    symlinkSync('..data/payment.yaml', join(vol, 'payment.yaml'));
    assert.ok(store.reload());
    const v1 = store.getStatus().version;
    store.watch(60_000);
    const ev = nextEvent(store, 2000);
    version(2, payment.replace('"/api/v1/charges", "/api/v1/refunds"', '"/api/v1/charges"'));
    assert.equal(await ev, 'snapshot', 'the ConfigMap-style update was not noticed within 2 s');
    assert.notEqual(store.getStatus().version, v1);
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
