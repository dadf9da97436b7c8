/** `ztmesh gateway`: the edge gateway (HTTPS in, mTLS into the mesh as its own workload identity). */
import type { Command } from 'commander';
import { readFileSync, writeFileSync, createWriteStream } from 'node:fs';
import { resolve } from 'node:path';
import type { CliContext } from '../context.js';
import { Exit } from '../context.js';
import { ZtmError } from '../../errors.js';
import { GatewayServer, DEFAULT_GATEWAY_LIMITS } from '../../gateway/gateway.js';
import { parseDuration } from '../../identity/join-token.js';
import { parseDnsNamesFlag } from '../../identity/server-cert.js';
import { createLogger } from '../../telemetry/log.js';
import { parseHostPort, parseKeyValues, parsePort } from '../flags.js';

function readPem(file: string, flag: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new ZtmError('ZTM_CONFIG_IO', `cannot read ${flag} ${file}: ${(e as Error).message}`);
  }
}

/** Exactly one of `--dns-names` and `--cert-file` + `--key-file`. */
function certificateSource(o: Record<string, string | undefined>): { tls: { certPem: string; keyPem: string } } | { dnsNames: string[] } {
  const files = o.certFile !== undefined || o.keyFile !== undefined;
  if (o.dnsNames !== undefined && files) throw new ZtmError('ZTM_USAGE', 'give either --dns-names or --cert-file/--key-file for the HTTPS certificate, not both');
  if (o.dnsNames !== undefined) return { dnsNames: parseDnsNamesFlag(o.dnsNames) };
  if (!files) throw new ZtmError('ZTM_USAGE', 'the HTTPS listener needs a certificate: --dns-names <name,...> (issued by the mesh CA) or --cert-file <pem> --key-file <pem>');
  if (o.certFile === undefined || o.keyFile === undefined) throw new ZtmError('ZTM_USAGE', '--cert-file and --key-file go together');
  return { tls: { certPem: readPem(o.certFile, '--cert-file'), keyPem: readPem(o.keyFile, '--key-file') } };
}

function positiveInt(v: string, flag: string): number {
  if (!/^[0-9]+$/.test(v) || Number(v) < 1) throw new ZtmError('ZTM_USAGE', `${flag} expects a positive integer, got "${v}"`);
  return Number(v);
}

export function registerGateway(program: Command, ctx: CliContext): void {
  program
    .command('gateway')
    .description('run the edge gateway: HTTPS listener, JWT authentication, rate limits, IP and size checks, routes into the mesh over mTLS')
    .option('--dns-names <name,...>', 'have the mesh CA issue the HTTPS certificate for these DNS names (each in the hosts of a Gateway in the gateway namespace that selects it; renewed automatically); or use --cert-file/--key-file')
    .option('--cert-file <pem>', 'server certificate chain for the HTTPS listener (PEM), with --key-file; or use --dns-names')
    .option('--key-file <pem>', 'its private key (PEM)')
    .option('--https-port <port>', 'HTTPS listener (0 = any free port)', '8443')
    .option('--http-port <port>', 'optional plaintext HTTP listener')
    .option('--bind <host>', 'listener address', '127.0.0.1')
    .option('--service <name>', 'the gateway workload\'s service name', 'ingress-gateway')
    .option('--namespace <ns>', 'its namespace', 'istio-system')
    .option('--service-account <sa>', 'its service account (identity spiffe://<td>/ns/<ns>/sa/<sa>)', 'ingress-gateway')
    .option('--labels <k=v,...>', 'workload labels (Gateway selectors; istio=ingressgateway is always set)', '')
    .requiredOption('--control-plane <host:port>', 'control plane mTLS address')
    .requiredOption('--ca-file <pem>', 'trust bundle (the mesh CA roots)')
    .option('--trust-domain <td>', 'trust domain', 'cluster.local')
    .option('--token <token>', 'join token (first start)')
    .requiredOption('--data-dir <dir>', 'certificate and state')
    .option('--admin-port <port>', 'admin: /metrics, /status, /ready, /config_dump', '15000')
    .option('--max-header-bytes <n>', 'largest request head (431 above)', String(DEFAULT_GATEWAY_LIMITS.maxHeaderBytes))
    .option('--max-headers <n>', 'most header fields per request (431 above)', String(DEFAULT_GATEWAY_LIMITS.maxHeaders))
    .option('--headers-timeout <duration>', 'time to receive the request head (408 after)', '10s')
    .option('--request-timeout <duration>', 'time to receive the whole request (408 after)', '60s')
    .option('--idle-timeout <duration>', 'close connections idle this long', '60s')
    .option('--access-log <file|->', 'JSON access log destination ("-" = stdout, "off")', '-')
    .option('--ready-file <file>', 'write the bound ports as JSON here once ready')
    .action(async (o: Record<string, string>) => {
      const al = o.accessLog === 'off' ? null : o.accessLog === '-' ? process.stdout : createWriteStream(o.accessLog, { flags: 'a' });
      const gw = new GatewayServer({
        service: o.service,
        namespace: o.namespace,
        serviceAccount: o.serviceAccount,
        labels: parseKeyValues(o.labels, '--labels'),
        bindHost: o.bind,
        httpsPort: parsePort(o.httpsPort, '--https-port', true),
        httpPort: o.httpPort !== undefined ? parsePort(o.httpPort, '--http-port', true) : null,
        ...certificateSource(o),
        adminPort: parsePort(o.adminPort, '--admin-port', true),
        controlPlane: parseHostPort(o.controlPlane, '--control-plane'),
        caPem: readPem(o.caFile, '--ca-file'),
        trustDomain: o.trustDomain,
        token: o.token ?? process.env.ZTMESH_JOIN_TOKEN,
        dataDir: resolve(o.dataDir),
        limits: {
          maxHeaderBytes: positiveInt(o.maxHeaderBytes, '--max-header-bytes'),
          maxHeaders: positiveInt(o.maxHeaders, '--max-headers'),
          headersTimeoutMs: parseDuration(o.headersTimeout),
          requestTimeoutMs: parseDuration(o.requestTimeout),
          idleTimeoutMs: parseDuration(o.idleTimeout),
        },
        accessLog: al,
        log: createLogger(`gateway/${o.service}`),
      });
      const ports = await gw.start();
      if (o.readyFile) writeFileSync(o.readyFile, JSON.stringify(ports));
      await new Promise<void>((r) => {
        process.once('SIGINT', () => r());
        process.once('SIGTERM', () => r());
      });
      await gw.stop();
      ctx.exitCode = Exit.OK;
    });
}
