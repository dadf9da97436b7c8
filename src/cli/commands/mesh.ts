/** `ztmesh control`, `ztmesh proxy`, `ztmesh quarantine`, `ztmesh status`: running the mesh by hand. */
import type { Command } from 'commander';
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { CliContext } from '../context.js';
import { Exit } from '../context.js';
import { ZtmError } from '../../errors.js';
import type { ControlPlane } from '../../control/server.js';
import { createLogger } from '../../telemetry/log.js';
import { paint, parseOutputFormat, renderData, renderTable, terminalWidth } from '../output.js';
import { collect, parseHostPort, parseKeyValues, parsePort } from '../flags.js';

export { parsePort, parseHostPort } from '../flags.js';

/** Resolve on SIGINT/SIGTERM. */
function untilSignal(): Promise<string> {
  return new Promise((r) => {
    process.once('SIGINT', () => r('SIGINT'));
    process.once('SIGTERM', () => r('SIGTERM'));
  });
}

async function adminCall(admin: string, method: string, path: string, body?: unknown): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(new URL(path, admin), { method, headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined });
  } catch (e) {
    throw new ZtmError('ZTM_CONFIG_IO', `cannot reach the control plane admin API at ${admin}: ${(e as Error).cause ? ((e as Error).cause as Error).message : (e as Error).message}`);
  }
  const json = (await res.json().catch(() => ({}))) as { error?: string };
  if (!res.ok) throw new ZtmError('ZTM_USAGE', `control plane answered ${res.status}: ${json.error ?? ''}`);
  return json;
}

export function registerMesh(program: Command, ctx: CliContext): void {
  program
    .command('control')
    .description('run the control plane: config (validated, watched), CA, registry, snapshot stream, admin API')
    .requiredOption('-c, --config <path>', 'config file or directory (repeatable; watched for changes)', collect, [])
    .requiredOption('--data-dir <dir>', 'state: CA, join tokens, quarantine list, registered endpoints')
    .option('--passphrase-file <file>', 'CA key passphrase (default: $ZTMESH_CA_PASSPHRASE)')
    .option('--trust-domain <td>', 'trust domain for a new CA', 'cluster.local')
    .option('--listen <host:port>', 'mTLS API for sidecars', '127.0.0.1:15010')
    .option('--admin-port <port>', 'loopback admin API (JSON)', '15014')
    .option('--svid-ttl <duration>', 'lifetime of workload certificates, e.g. 1h, 10m', '1h')
    .option('--ready-file <file>', 'write {"port","adminPort",...} as JSON here once listening')
    .action(async (o: { config: string[]; dataDir: string; passphraseFile?: string; trustDomain: string; listen: string; adminPort: string; svidTtl: string; readyFile?: string }) => {
      const listen = parseHostPort(o.listen, '--listen', true);
      const { parseDuration } = await import('../../identity/join-token.js');
      // Loaded on demand: each process loads only its own side (see main.ts).
      const { ControlPlane } = await import('../../control/server.js');
      const { resolvePassphrase } = await import('../../identity/keystore.js');
      const cp = new ControlPlane({
        configPaths: o.config,
        dataDir: resolve(o.dataDir),
        passphrase: await resolvePassphrase({ passphraseFile: o.passphraseFile }),
        trustDomain: o.trustDomain,
        host: listen.host,
        port: listen.port,
        adminPort: parsePort(o.adminPort, '--admin-port', true),
        svidTtlMs: parseDuration(o.svidTtl),
        log: createLogger('control'),
      });
      const info = await cp.start();
      if (o.readyFile) writeFileSync(o.readyFile, JSON.stringify(info));
      ctx.stderr.write(`control plane ready: mTLS ${listen.host}:${info.port}, admin http://127.0.0.1:${info.adminPort}, trust domain ${info.trustDomain}, CA bundle ${info.bundlePath}\n`);
      await untilSignal();
      await cp.stop();
      ctx.exitCode = Exit.OK;
    });

  program
    .command('proxy')
    .description('run a sidecar beside an app: inbound mTLS + authorization, outbound proxy with secure naming, egress control')
    .requiredOption('--service <name>', 'service name (what clients put in URLs)')
    .requiredOption('--namespace <ns>', 'namespace')
    .requiredOption('--service-account <sa>', 'service account (the identity: spiffe://<td>/ns/<ns>/sa/<sa>)')
    .requiredOption('--app-port <port>', 'the app, on 127.0.0.1')
    .requiredOption('--port <port>', 'inbound listener (0 = any free port)')
    .option('--service-port <port>', 'the port clients name in URLs (default: --port)')
    .option('--labels <k=v,...>', 'workload labels (policy selectors)', '')
    .option('--outbound-port <port>', 'HTTP proxy port for the app (HTTP_PROXY=http://127.0.0.1:<port>)', '15001')
    .option('--admin-port <port>', 'admin: /metrics, /status, /ready, /config_dump', '15000')
    .option('--upstream <port=host>', 'extra localhost port forwarding to one service (repeatable)', collect, [])
    .requiredOption('--control-plane <host:port>', 'control plane mTLS address')
    .requiredOption('--ca-file <pem>', 'trust bundle (the CA roots, e.g. <control data dir>/ca/roots.pem)')
    .option('--trust-domain <td>', 'trust domain', 'cluster.local')
    .option('--token <token>', 'join token (first start; later starts renew with the stored certificate)')
    .requiredOption('--data-dir <dir>', 'certificate + key (svid.pem, 0600) and last applied configuration (fail-static)')
    .option('--bind <host>', 'inbound bind address', '127.0.0.1')
    .option('--access-log <file|->', 'JSON access log destination ("-" = stdout, "off")', '-')
    .option('--ready-file <file>', 'write the bound ports as JSON here once ready')
    .action(async (o: Record<string, string | string[]>) => {
      const upstreams: Record<number, string> = {};
      for (const u of o.upstream as string[]) {
        const [p, h] = u.split('=');
        if (!p || !h) throw new ZtmError('ZTM_USAGE', `--upstream expects port=host, got "${u}"`);
        upstreams[parsePort(p, '--upstream')] = h;
      }
      let caPem: string;
      try {
        caPem = readFileSync(o.caFile as string, 'utf8');
      } catch (e) {
        throw new ZtmError('ZTM_CONFIG_IO', `cannot read --ca-file ${o.caFile}: ${(e as Error).message}`);
      }
      const { createWriteStream } = await import('node:fs');
      const al = o.accessLog === 'off' ? null : o.accessLog === '-' ? process.stdout : createWriteStream(o.accessLog as string, { flags: 'a' });
      const { Sidecar } = await import('../../proxy/sidecar.js');
      const sc = new Sidecar({
        service: o.service as string,
        namespace: o.namespace as string,
        serviceAccount: o.serviceAccount as string,
        labels: parseKeyValues(o.labels as string, '--labels'),
        appPort: parsePort(o.appPort as string, '--app-port'),
        port: parsePort(o.port as string, '--port', true),
        servicePort: o.servicePort ? parsePort(o.servicePort as string, '--service-port') : undefined,
        outboundPort: parsePort(o.outboundPort as string, '--outbound-port', true),
        adminPort: parsePort(o.adminPort as string, '--admin-port', true),
        upstreams,
        controlPlane: parseHostPort(o.controlPlane as string, '--control-plane'),
        caPem,
        trustDomain: o.trustDomain as string,
        token: (o.token as string | undefined) ?? process.env.ZTMESH_JOIN_TOKEN,
        dataDir: resolve(o.dataDir as string),
        bindHost: o.bind as string,
        accessLog: al,
        log: createLogger(`proxy/${o.service}`),
      });
      const ports = await sc.start();
      if (o.readyFile) writeFileSync(o.readyFile as string, JSON.stringify(ports));
      await untilSignal();
      await sc.stop();
      ctx.exitCode = Exit.OK;
    });

  program
    .command('quarantine')
    .description('make every sidecar refuse an identity within a second (incident response); --lift to undo')
    .argument('<spiffe-id>', 'e.g. spiffe://cluster.local/ns/production/sa/order-service')
    .option('--lift', 'lift the quarantine')
    .option('--admin <url>', 'control plane admin API', 'http://127.0.0.1:15014')
    .option('-o, --output <format>', 'table | json | yaml', 'table')
    .action(async (id: string, o: { lift?: boolean; admin: string; output: string }) => {
      const fmt = parseOutputFormat(o.output);
      const r = (await adminCall(o.admin, 'POST', '/v1/quarantine', { spiffeId: id, lift: !!o.lift })) as { quarantined: string[] };
      if (fmt !== 'table') ctx.stdout.write(renderData(fmt, r));
      else ctx.stdout.write(`${o.lift ? 'lifted' : paint(ctx.stdout, 'red', 'quarantined')}: ${id}\nquarantined now: ${r.quarantined.length ? r.quarantined.join(', ') : '(none)'}\n`);
    });

  program
    .command('status')
    .description('show the control plane: config version and errors, sidecars and the version each applied, certificates')
    .option('--admin <url>', 'control plane admin API', 'http://127.0.0.1:15014')
    .option('-o, --output <format>', 'table | json | yaml', 'table')
    .action(async (o: { admin: string; output: string }) => {
      const fmt = parseOutputFormat(o.output);
      const s = (await adminCall(o.admin, 'GET', '/v1/status')) as ReturnType<ControlPlane['status']>;
      if (fmt !== 'table') {
        ctx.stdout.write(renderData(fmt, s));
        return;
      }
      const w = ctx.stdout;
      ctx.stdout.write(`trust domain ${s.trustDomain}   config version ${s.config.version ?? '-'}${s.config.errors.length ? paint(w, 'red', `   last change REJECTED (${s.config.errors.length} errors)`) : ''}\n\n`);
      ctx.stdout.write(
        renderTable(
          ['sidecar', 'identity', 'sent', 'applied', 'sync', 'cert expires'],
          s.sidecars.map((c) => [c.id, c.spiffeId, c.sentVersion ?? '-', c.appliedVersion ?? '-', c.nack ? paint(w, 'red', 'NACK') : c.inSync ? paint(w, 'green', 'yes') : paint(w, 'yellow', 'pending'), c.certificate?.notAfter ?? '-']),
          terminalWidth(w),
        ),
      );
      for (const e of s.config.errors) ctx.stdout.write(`${e.file ?? ''}:${e.line ?? ''}:${e.col ?? ''} ${e.field ?? ''}: ${e.message}\n`);
      if (s.quarantined.length) ctx.stdout.write(`\nquarantined: ${s.quarantined.join(', ')}\n`);
    });
}
