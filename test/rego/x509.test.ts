import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileModules, toJSON } from '../../src/rego/index.js';

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

function makeChain(): { leaf: string; ca: string } {
  const dir = mkdtempSync(join(tmpdir(), 'rego-x509-'));
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '30', '-subj', '/O=ztmesh/CN=test root', '-addext', 'basicConstraints=critical,CA:TRUE'], dir);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/O=ztmesh/CN=frontend'], dir);
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=URI:spiffe://cluster.local/ns/prod/sa/frontend,DNS:frontend.prod.svc\nextendedKeyUsage=clientAuth\n');
  openssl(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '10', '-extfile', 'ext.cnf'], dir);
  return { leaf: readFileSync(join(dir, 'leaf.pem'), 'utf8'), ca: readFileSync(join(dir, 'ca.pem'), 'utf8') };
}

test('crypto.x509 parses certificates with Go field names and verifies chains', () => {
  const { leaf, ca } = makeChain();
  const p = compileModules({
    'x.rego': `package x
import rego.v1
certs := crypto.x509.parse_certificates(input.pem)
spiffe_id := sprintf("%s://%s%s", [u.Scheme, u.Host, u.Path]) if {
  some u in certs[0].URIs
  u.Scheme == "spiffe"
}
verified := crypto.x509.parse_and_verify_certificates(input.chain)[0]
leaf_only := crypto.x509.parse_and_verify_certificates(input.pem)[0]
`,
  });
  const input = { pem: leaf, chain: leaf + ca };
  const certs = toJSON(p.evalPath('x.certs', { input })!) as Record<string, unknown>[];
  assert.equal(certs.length, 1);
  assert.equal((certs[0].Subject as { CommonName: string }).CommonName, 'frontend');
  assert.deepEqual((certs[0].Issuer as { Organization: string[] }).Organization, ['ztmesh']);
  assert.deepEqual(certs[0].DNSNames, ['frontend.prod.svc']);
  assert.deepEqual(certs[0].ExtKeyUsage, [2]);
  assert.equal(certs[0].IsCA, false);
  assert.match(certs[0].NotAfter as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal(p.evalPath('x.spiffe_id', { input }), 'spiffe://cluster.local/ns/prod/sa/frontend');
  assert.equal(p.evalPath('x.verified', { input }), true);
  assert.equal(p.evalPath('x.leaf_only', { input }), false);
  // base64 of the PEM is accepted too
  const b64 = compileModules({ 'y.rego': 'package y\nn := count(crypto.x509.parse_certificates(input))\n' });
  assert.equal(b64.evalPath('y.n', { input: Buffer.from(leaf + ca).toString('base64') }), 2n);
});
