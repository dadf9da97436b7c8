/** `ztmesh ca init|import`: create or plug in the mesh CA (thin: calls src/identity). */
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import type { CliContext } from '../context.js';
import { Exit } from '../context.js';
import { parseOutputFormat, renderData, renderTable, terminalWidth, type OutputFormat } from '../output.js';
import { ZtmError } from '../../errors.js';
import { caPaths, importCa, initCa, summarizeCa, type CaSummary } from '../../identity/ca.js';
import { resolvePassphrase } from '../../identity/keystore.js';
import { loadOrCreateJwtSigner } from '../../identity/jwt-svid.js';

export function defaultDataDir(v: string | undefined): string {
  return v ?? process.env.ZTMESH_DATA_DIR ?? './ztmesh-data';
}

export function outputFormat(v: string | undefined): OutputFormat {
  try {
    return parseOutputFormat(v);
  } catch (e) {
    throw new ZtmError('ZTM_USAGE', (e as Error).message);
  }
}

export async function readInput(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new ZtmError('ZTM_CONFIG_IO', `cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}

function printSummary(ctx: CliContext, fmt: OutputFormat, s: CaSummary & { jwtKid: string }): void {
  if (fmt !== 'table') {
    ctx.stdout.write(renderData(fmt, s));
    return;
  }
  const rows = [
    ['trust domain', s.trustDomain],
    ['mode', s.mode],
    ['directory', s.dir],
    ...s.roots.map((r, i) => [`root ${i + 1}`, `${r.subject} (until ${r.notAfter})`]),
    ['signing CA', `${s.signing.subject} (until ${s.signing.notAfter})`],
    ['JWT-SVID key id', s.jwtKid],
  ];
  ctx.stdout.write(renderTable(['field', 'value'], rows, terminalWidth(ctx.stdout)));
}

export function registerCa(program: Command, ctx: CliContext): void {
  const ca = program.command('ca').description('manage the mesh certificate authority (root + intermediate, keys encrypted at rest)');

  ca.command('init')
    .description('create a root CA (ECDSA P-256, 10 years) and an intermediate signing CA (1 year)')
    .option('--data-dir <dir>', 'data directory (default $ZTMESH_DATA_DIR or ./ztmesh-data)')
    .option('--trust-domain <name>', 'SPIFFE trust domain', 'cluster.local')
    .option('--passphrase-file <file>', 'file holding the key passphrase (default: $ZTMESH_CA_PASSPHRASE)')
    .option('--force', 'replace an existing CA')
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .action(async (o: { dataDir?: string; trustDomain: string; passphraseFile?: string; force?: boolean; output?: string }) => {
      const fmt = outputFormat(o.output);
      const dir = defaultDataDir(o.dataDir);
      const passphrase = await resolvePassphrase({ passphraseFile: o.passphraseFile });
      const authority = await initCa(dir, { trustDomain: o.trustDomain, passphrase, force: o.force });
      const jwt = await loadOrCreateJwtSigner(dir, passphrase);
      printSummary(ctx, fmt, { ...summarizeCa(authority, caPaths(dir).dir, 'self-signed'), jwtKid: jwt.kid });
      ctx.exitCode = Exit.OK;
    });

  ca.command('import')
    .description("plug in an existing CA (like Istio's cacerts): root certificate, signing certificate (+chain) and its key")
    .requiredOption('--root <file>', 'root certificate(s) PEM')
    .requiredOption('--cert <file>', 'signing (intermediate) certificate PEM, optionally followed by its chain')
    .requiredOption('--key <file>', 'private key of the signing certificate (PEM, PKCS#8/SEC1, optionally encrypted)')
    .option('--key-passphrase-file <file>', 'passphrase of an encrypted --key')
    .option('--data-dir <dir>', 'data directory (default $ZTMESH_DATA_DIR or ./ztmesh-data)')
    .option('--trust-domain <name>', 'trust domain (default: from the certificate URI SAN, else cluster.local)')
    .option('--passphrase-file <file>', 'passphrase sealing the key in the data dir (default: $ZTMESH_CA_PASSPHRASE)')
    .option('--force', 'replace an existing CA')
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .action(
      async (o: {
        root: string;
        cert: string;
        key: string;
        keyPassphraseFile?: string;
        dataDir?: string;
        trustDomain?: string;
        passphraseFile?: string;
        force?: boolean;
        output?: string;
      }) => {
        const fmt = outputFormat(o.output);
        const dir = defaultDataDir(o.dataDir);
        const passphrase = await resolvePassphrase({ passphraseFile: o.passphraseFile });
        const keyPassphrase = o.keyPassphraseFile ? (await readInput(o.keyPassphraseFile, 'key passphrase file')).replace(/\r?\n$/, '') : undefined;
        const authority = await importCa(dir, {
          rootPem: await readInput(o.root, 'root certificate'),
          certPem: await readInput(o.cert, 'signing certificate'),
          keyPem: await readInput(o.key, 'signing key'),
          keyPassphrase,
          passphrase,
          trustDomain: o.trustDomain,
          force: o.force,
        });
        const jwt = await loadOrCreateJwtSigner(dir, passphrase);
        printSummary(ctx, fmt, { ...summarizeCa(authority, caPaths(dir).dir, 'imported'), jwtKid: jwt.kid });
        ctx.exitCode = Exit.OK;
      },
    );
}
