/** `ztmesh cert inspect|issue`: look at an SVID, or issue one from the local CA. */
import type { Command } from 'commander';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CliContext } from '../context.js';
import { Exit } from '../context.js';
import { paint, renderData, renderTable, terminalWidth } from '../output.js';
import { ZtmError } from '../../errors.js';
import { loadCa, loadCaRoots } from '../../identity/ca.js';
import { resolvePassphrase } from '../../identity/keystore.js';
import { parseDuration } from '../../identity/join-token.js';
import { parseSpiffeId } from '../../identity/spiffe-id.js';
import { BundleSet } from '../../identity/bundle.js';
import { checkLeaf, verifySvidChain } from '../../identity/verify.js';
import { buildCsr, nameToString, parseCertificate, pemCertificates, type ParsedCertificate } from '../../identity/x509.js';
import { defaultDataDir, outputFormat, readInput } from './ca.js';

interface Check {
  check: string;
  ok: boolean;
  detail: string;
}

export interface CertReport {
  spiffeId: string | null;
  subject: string;
  issuer: string;
  serial: string;
  notBefore: string;
  notAfter: string;
  expiresInSeconds: number;
  chain: { subject: string; issuer: string; notAfter: string; ca: boolean; uris: string[] }[];
  checks: Check[];
  verdict: 'valid' | 'invalid';
}

/** Build the inspection report (pure: no I/O). */
export function inspectChain(chain: Buffer[], bundles: BundleSet | undefined, now: number): CertReport {
  const parsed: ParsedCertificate[] = chain.map((d, i) => {
    try {
      return parseCertificate(d);
    } catch (e) {
      throw new ZtmError('ZTM_SVID_INVALID', `certificate ${i + 1} is malformed: ${(e as Error).message}`);
    }
  });
  const leaf = parsed[0];
  const checks: Check[] = [];
  const add = (check: string, ok: boolean, detail: string) => checks.push({ check, ok, detail });
  add('exactly one URI SAN', leaf.uris.length === 1, `${leaf.uris.length} URI SAN(s)`);
  let spiffeId: string | null = null;
  if (leaf.uris.length >= 1) {
    try {
      spiffeId = parseSpiffeId(leaf.uris[0]).toString();
      add('valid SPIFFE ID', true, spiffeId);
    } catch (e) {
      add('valid SPIFFE ID', false, (e as Error).message);
    }
  }
  add('not a CA (basicConstraints cA=false)', !leaf.basicConstraints?.ca, leaf.basicConstraints ? `cA=${leaf.basicConstraints.ca}` : 'no basicConstraints');
  const ku = leaf.keyUsage ? [...leaf.keyUsage.usages].join(',') : 'absent';
  add(
    'key usage: digitalSignature, no keyCertSign/cRLSign',
    !!leaf.keyUsage?.usages.has('digitalSignature') && !leaf.keyUsage.usages.has('keyCertSign') && !leaf.keyUsage.usages.has('cRLSign'),
    `${ku}${leaf.keyUsage?.critical ? ' (critical)' : ''}`,
  );
  add('within validity window', now >= leaf.notBefore.getTime() && now <= leaf.notAfter.getTime(), `${leaf.notBefore.toISOString()} .. ${leaf.notAfter.toISOString()}`);
  const leafOk = checkLeaf(leaf).ok;
  if (bundles) {
    const v = verifySvidChain(chain, bundles, now);
    add('chains to the trust bundle', v.ok, v.ok ? `${v.chain.length} certificate path, trust domain ${v.id.trustDomain}` : `${v.reason}: ${v.detail}`);
  } else {
    add('chains to the trust bundle', false, 'not checked: pass --bundle <roots.pem> or --data-dir');
  }
  const verdict = checks.every((c) => c.ok) && leafOk ? 'valid' : 'invalid';
  return {
    spiffeId,
    subject: nameToString(leaf.subject),
    issuer: nameToString(leaf.issuer),
    serial: leaf.serialHex,
    notBefore: leaf.notBefore.toISOString(),
    notAfter: leaf.notAfter.toISOString(),
    expiresInSeconds: Math.floor((leaf.notAfter.getTime() - now) / 1000),
    chain: parsed.map((c) => ({
      subject: nameToString(c.subject),
      issuer: nameToString(c.issuer),
      notAfter: c.notAfter.toISOString(),
      ca: !!c.basicConstraints?.ca,
      uris: c.uris,
    })),
    checks,
    verdict,
  };
}

export function registerCert(program: Command, ctx: CliContext): void {
  const cert = program.command('cert').description('X.509-SVIDs: inspect and issue');

  cert
    .command('inspect')
    .description('show an SVID: SPIFFE ID, validity, issuer chain and the X509-SVID checks it passes or fails')
    .argument('<pem>', 'PEM file: leaf first, then intermediates')
    .option('--bundle <file>', 'trust bundle roots (PEM) to verify the chain against')
    .option('--data-dir <dir>', "use this data dir's CA roots as the trust bundle")
    .option('--at <time>', 'evaluate at this ISO-8601 time instead of now')
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .action(async (file: string, o: { bundle?: string; dataDir?: string; at?: string; output?: string }) => {
      const fmt = outputFormat(o.output);
      const chain = pemCertificates(await readInput(file, 'certificate'));
      if (chain.length === 0) throw new ZtmError('ZTM_SVID_INVALID', `${file} has no CERTIFICATE block`);
      const now = o.at ? Date.parse(o.at) : Date.now();
      if (Number.isNaN(now)) throw new ZtmError('ZTM_USAGE', `--at "${o.at}" is not an ISO-8601 time`);
      let bundles: BundleSet | undefined;
      const leafUri = (() => {
        try {
          return parseSpiffeId(parseCertificate(chain[0]).uris[0] ?? '').trustDomain;
        } catch {
          return undefined;
        }
      })();
      if (o.bundle) {
        const pem = await readInput(o.bundle, 'bundle');
        bundles = new BundleSet();
        if (leafUri) bundles.addRoot(leafUri, pem);
      } else if (o.dataDir) {
        const r = await loadCaRoots(o.dataDir);
        bundles = new BundleSet();
        for (const root of r.roots) bundles.addRoot(r.trustDomain, root);
      }
      const report = inspectChain(chain, bundles, now);
      if (fmt === 'table') {
        const w = terminalWidth(ctx.stdout);
        const head = [
          ['SPIFFE ID', report.spiffeId ?? '(none)'],
          ['subject', report.subject],
          ['issuer', report.issuer],
          ['serial', report.serial],
          ['valid', `${report.notBefore} .. ${report.notAfter} (${report.expiresInSeconds >= 0 ? `expires in ${report.expiresInSeconds}s` : `expired ${-report.expiresInSeconds}s ago`})`],
        ];
        ctx.stdout.write(renderTable(['field', 'value'], head, w) + '\n');
        ctx.stdout.write(
          renderTable(
            ['#', 'subject', 'issuer', 'not after', 'ca'],
            report.chain.map((c, i) => [String(i), c.subject, c.issuer, c.notAfter, c.ca ? 'yes' : 'no']),
            w,
          ) + '\n',
        );
        ctx.stdout.write(
          renderTable(
            ['check', 'result', 'detail'],
            report.checks.map((c) => [c.check, c.ok ? paint(ctx.stdout, 'green', 'pass') : paint(ctx.stdout, 'red', 'FAIL'), c.detail]),
            w,
          ),
        );
        ctx.stdout.write(`\nverdict: ${report.verdict}\n`);
      } else ctx.stdout.write(renderData(fmt, report));
      ctx.exitCode = report.verdict === 'valid' ? Exit.OK : Exit.FAILED;
    });

  cert
    .command('issue')
    .description('issue an X.509-SVID from the local CA (writes svid.pem, svid.key, bundle.pem)')
    .requiredOption('--spiffe-id <id>', 'SPIFFE ID, e.g. spiffe://cluster.local/ns/default/sa/web')
    .requiredOption('--out <dir>', 'output directory')
    .option('--data-dir <dir>', 'data directory (default $ZTMESH_DATA_DIR or ./ztmesh-data)')
    .option('--ttl <duration>', 'lifetime (default 1h, at most 24h)', '1h')
    .option('--passphrase-file <file>', 'CA key passphrase file (default: $ZTMESH_CA_PASSPHRASE)')
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .action(async (o: { spiffeId: string; out: string; dataDir?: string; ttl: string; passphraseFile?: string; output?: string }) => {
      const fmt = outputFormat(o.output);
      const id = parseSpiffeId(o.spiffeId);
      const ttlMs = parseDuration(o.ttl);
      if (ttlMs > 24 * 3_600_000) throw new ZtmError('ZTM_USAGE', `--ttl ${o.ttl} is above the 24h cap`);
      const ca = await loadCa(defaultDataDir(o.dataDir), await resolvePassphrase({ passphraseFile: o.passphraseFile }));
      const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      const svid = ca.issueFromCsr(buildCsr(key, [id.toString()]), { spiffeId: id, ttlMs });
      await mkdir(o.out, { recursive: true });
      const files = { certificate: join(o.out, 'svid.pem'), key: join(o.out, 'svid.key'), bundle: join(o.out, 'bundle.pem') };
      await writeFile(files.certificate, svid.chainPem);
      await writeFile(files.key, key.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
      await writeFile(files.bundle, ca.rootsPem());
      const out = { spiffeId: svid.spiffeId, serial: svid.serialHex, notBefore: svid.notBefore.toISOString(), notAfter: svid.notAfter.toISOString(), files };
      if (fmt === 'table') {
        ctx.stdout.write(
          renderTable(
            ['field', 'value'],
            [
              ['SPIFFE ID', out.spiffeId],
              ['serial', out.serial],
              ['valid', `${out.notBefore} .. ${out.notAfter}`],
              ['certificate', files.certificate],
              ['key', files.key],
              ['bundle', files.bundle],
            ],
            terminalWidth(ctx.stdout),
          ),
        );
      } else ctx.stdout.write(renderData(fmt, out));
      ctx.exitCode = Exit.OK;
    });

}
