import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { createIntermediateCa, createRootCa } from '../../src/identity/ca.js';
import { toPem } from '../../src/identity/x509.js';
import { JoinTokenStore } from '../../src/identity/join-token.js';
import { makeLeaf, tmpDir } from './helpers.js';

async function run(args: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) {
    saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    const code = await main(['node', 'ztmesh', ...args], { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) } });
    return { code, out, err };
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

const PASS = { ZTMESH_CA_PASSPHRASE: 'cli-test-pass' };

test('ca init → token create → cert issue → cert inspect', async () => {
  const d = tmpDir();
  const noPass = await run(['ca', 'init', '--data-dir', d], { ZTMESH_CA_PASSPHRASE: undefined });
  assert.equal(noPass.code, 2, 'passphrase is required');
  assert.match(noPass.err, /ZTMESH_CA_PASSPHRASE/);

  const init = await run(['ca', 'init', '--data-dir', d, '-o', 'json'], PASS);
  assert.equal(init.code, 0, init.err);
  const summary = JSON.parse(init.out);
  assert.equal(summary.trustDomain, 'cluster.local');
  assert.equal(summary.mode, 'self-signed');
  assert.equal((await run(['ca', 'init', '--data-dir', d], PASS)).code, 1, 'refuses to overwrite');

  const tok = await run(['token', 'create', '--namespace', 'production', '--service-account', 'order-service', '--ttl', '10m', '--data-dir', d, '-o', 'json']);
  assert.equal(tok.code, 0, tok.err);
  const t = JSON.parse(tok.out);
  assert.equal(t.spiffeId, 'spiffe://cluster.local/ns/production/sa/order-service');
  const att = await JoinTokenStore.inDataDir(d).consume(t.token);
  assert.equal(att.serviceAccount, 'order-service');
  assert.equal((await run(['token', 'create', '--namespace', 'a', '--service-account', 'b', '--ttl', '48h', '--data-dir', d])).code, 2);
  assert.equal((await run(['token', 'create', '--namespace', 'a', '--data-dir', d])).code, 2, 'missing flag');

  const out = join(d, 'out');
  const issue = await run(['cert', 'issue', '--spiffe-id', 'spiffe://cluster.local/ns/web/sa/frontend', '--out', out, '--data-dir', d, '--ttl', '30m'], PASS);
  assert.equal(issue.code, 0, issue.err);
  assert.equal(statSync(join(out, 'svid.key')).mode & 0o777, 0o600);
  assert.equal((await run(['cert', 'issue', '--spiffe-id', 'spiffe://cluster.local/ns/web/', '--out', out, '--data-dir', d], PASS)).code, 1);
  assert.equal((await run(['cert', 'issue', '--spiffe-id', 'spiffe://cluster.local/ns/a/sa/b', '--out', out, '--data-dir', d], { ZTMESH_CA_PASSPHRASE: 'wrong' })).code, 1);

  const table = await run(['cert', 'inspect', join(out, 'svid.pem'), '--data-dir', d]);
  assert.equal(table.code, 0, table.err + table.out);
  assert.match(table.out, /spiffe:\/\/cluster\.local\/ns\/web\/sa\/frontend/);
  assert.match(table.out, /verdict: valid/);
  const json = JSON.parse((await run(['cert', 'inspect', join(out, 'svid.pem'), '--bundle', join(out, 'bundle.pem'), '-o', 'json'])).out);
  assert.equal(json.verdict, 'valid');
  assert.equal(json.chain.length, 2);
  assert.ok(json.checks.every((c: { ok: boolean }) => c.ok));
  const yaml = await run(['cert', 'inspect', join(out, 'svid.pem'), '-o', 'yaml']);
  assert.equal(yaml.code, 1, 'without a bundle the chain is not verified, so not "valid"');
  assert.match(yaml.out, /verdict: invalid/);
  const later = await run(['cert', 'inspect', join(out, 'svid.pem'), '--data-dir', d, '--at', new Date(Date.now() + 3_600_000).toISOString(), '-o', 'json']);
  assert.equal(later.code, 1);
  assert.equal(JSON.parse(later.out).checks.find((c: { check: string }) => c.check === 'within validity window').ok, false);
  assert.equal((await run(['cert', 'inspect', join(out, 'svid.pem'), '-o', 'xml'])).code, 2);
});

test('cert inspect shows failed checks on a bad certificate', async () => {
  const d = tmpDir();
  const root = createRootCa({ trustDomain: 'cluster.local' });
  const inter = createIntermediateCa(root, { trustDomain: 'cluster.local' });
  const leaf = makeLeaf(inter, { uris: ['spiffe://cluster.local/a', 'spiffe://cluster.local/b'], keyUsage: ['digitalSignature', 'keyCertSign'] });
  writeFileSync(join(d, 'bad.pem'), toPem(leaf) + toPem(inter.der));
  writeFileSync(join(d, 'root.pem'), toPem(root.der));
  const r = await run(['cert', 'inspect', join(d, 'bad.pem'), '--bundle', join(d, 'root.pem'), '-o', 'json']);
  assert.equal(r.code, 1);
  const rep = JSON.parse(r.out);
  const byName = Object.fromEntries(rep.checks.map((c: { check: string; ok: boolean }) => [c.check, c.ok]));
  assert.equal(byName['exactly one URI SAN'], false);
  assert.equal(byName['key usage: digitalSignature, no keyCertSign/cRLSign'], false);
  assert.equal(byName['chains to the trust bundle'], false);
  assert.equal((await run(['cert', 'inspect', join(d, 'missing.pem')])).code, 3);
});

test('ca import with a passphrase file and an encrypted key', async () => {
  const d = tmpDir();
  const root = createRootCa({ trustDomain: 'corp.example' });
  const inter = createIntermediateCa(root, { trustDomain: 'corp.example' });
  writeFileSync(join(d, 'root.pem'), toPem(root.der));
  writeFileSync(join(d, 'int.pem'), toPem(inter.der));
  writeFileSync(join(d, 'int.key'), inter.key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'kp' }) as string);
  writeFileSync(join(d, 'kp.txt'), 'kp\n');
  writeFileSync(join(d, 'pass.txt'), 'sealing-pass\n');
  const data = join(d, 'data');
  const r = await run(
    ['ca', 'import', '--root', join(d, 'root.pem'), '--cert', join(d, 'int.pem'), '--key', join(d, 'int.key'), '--key-passphrase-file', join(d, 'kp.txt'), '--data-dir', data, '--passphrase-file', join(d, 'pass.txt'), '-o', 'json'],
    { ZTMESH_CA_PASSPHRASE: undefined },
  );
  assert.equal(r.code, 0, r.err);
  assert.equal(JSON.parse(r.out).trustDomain, 'corp.example');
  const issue = await run(['cert', 'issue', '--spiffe-id', 'spiffe://corp.example/ns/a/sa/b', '--out', join(d, 'o'), '--data-dir', data, '--passphrase-file', join(d, 'pass.txt')], {
    ZTMESH_CA_PASSPHRASE: undefined,
  });
  assert.equal(issue.code, 0, issue.err);
  assert.equal(readFileSync(join(d, 'o', 'bundle.pem'), 'utf8'), toPem(root.der));
  const missing = await run(['ca', 'import', '--root', join(d, 'root.pem'), '--cert', join(d, 'int.pem')], PASS);
  assert.equal(missing.code, 2);
});
