/** `ztmesh token create`: a single-use join token bound to namespace + service account. */
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { Exit } from '../context.js';
import { renderData, renderTable, terminalWidth } from '../output.js';
import { JoinTokenStore, parseDuration } from '../../identity/join-token.js';
import { loadCaRoots } from '../../identity/ca.js';
import { workloadSpiffeId } from '../../identity/spiffe-id.js';
import { defaultDataDir, outputFormat } from './ca.js';

export function registerToken(program: Command, ctx: CliContext): void {
  const token = program.command('token').description('join tokens: single-use attestation for a workload bootstrap');
  token
    .command('create')
    .description('create a join token for namespace + service account (stored hashed in the data dir)')
    .requiredOption('--namespace <ns>', 'namespace the token attests')
    .requiredOption('--service-account <sa>', 'service account the token attests')
    .option('--ttl <duration>', 'lifetime (e.g. 10m; at most 24h)', '10m')
    .option('--data-dir <dir>', 'data directory (default $ZTMESH_DATA_DIR or ./ztmesh-data)')
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .action(async (o: { namespace: string; serviceAccount: string; ttl: string; dataDir?: string; output?: string }) => {
      const fmt = outputFormat(o.output);
      const dir = defaultDataDir(o.dataDir);
      let trustDomain = 'cluster.local';
      try {
        trustDomain = (await loadCaRoots(dir)).trustDomain;
      } catch {
        // No CA yet: tokens can be minted before `ca init`; the default trust domain applies.
      }
      const store = JoinTokenStore.inDataDir(dir);
      const t = await store.create({ namespace: o.namespace, serviceAccount: o.serviceAccount, ttlMs: parseDuration(o.ttl), trustDomain });
      const out = {
        token: t.token,
        spiffeId: workloadSpiffeId(trustDomain, t.namespace, t.serviceAccount).toString(),
        namespace: t.namespace,
        serviceAccount: t.serviceAccount,
        expiresAt: t.expiresAt.toISOString(),
      };
      if (fmt === 'table') {
        ctx.stdout.write(
          renderTable(['field', 'value'], Object.entries(out).map(([k, v]) => [k, v]), Math.max(terminalWidth(ctx.stdout), out.token.length + 20)),
        );
      } else ctx.stdout.write(renderData(fmt, out));
      ctx.exitCode = Exit.OK;
    });
}
