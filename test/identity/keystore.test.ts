import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sealPrivateKey, openPrivateKey, resolvePassphrase } from '../../src/identity/keystore.js';
import { p256, tmpDir } from './helpers.js';

test('sealed keys round-trip, and refuse a wrong passphrase or a tampered envelope', async () => {
  const k = p256();
  const sealed = await sealPrivateKey(k, 'pw');
  assert.doesNotMatch(sealed, /BEGIN/);
  const back = await openPrivateKey(sealed, 'pw');
  assert.ok(back.equals(k));
  await assert.rejects(() => openPrivateKey(sealed, 'pw2'), { code: 'ZTM_CA' });
  const env = JSON.parse(sealed);
  const ct = Buffer.from(env.ciphertext, 'base64');
  ct[0] ^= 1;
  await assert.rejects(() => openPrivateKey(JSON.stringify({ ...env, ciphertext: ct.toString('base64') }), 'pw'), { code: 'ZTM_CA' });
  await assert.rejects(() => openPrivateKey(JSON.stringify({ ...env, kdf: { ...env.kdf, N: 2 } }), 'pw'), { code: 'ZTM_CA' });
  await assert.rejects(() => openPrivateKey('-----BEGIN PRIVATE KEY-----', 'pw'), { code: 'ZTM_CA' });
  await assert.rejects(() => sealPrivateKey(k, ''), { code: 'ZTM_CA' });
});

test('passphrase: file first, then ZTMESH_CA_PASSPHRASE, else a usage error', async () => {
  const d = tmpDir();
  writeFileSync(join(d, 'p'), 'from-file\n');
  writeFileSync(join(d, 'empty'), '\n');
  assert.equal(await resolvePassphrase({ passphraseFile: join(d, 'p'), env: { ZTMESH_CA_PASSPHRASE: 'env' } }), 'from-file');
  assert.equal(await resolvePassphrase({ env: { ZTMESH_CA_PASSPHRASE: 'env' } }), 'env');
  await assert.rejects(() => resolvePassphrase({ env: {} }), { code: 'ZTM_USAGE' });
  await assert.rejects(() => resolvePassphrase({ passphraseFile: join(d, 'empty'), env: {} }), { code: 'ZTM_USAGE' });
  await assert.rejects(() => resolvePassphrase({ passphraseFile: join(d, 'nope'), env: {} }), { code: 'ZTM_CONFIG_IO' });
});
