import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import type { CliContext } from '../context.js';
import { Exit } from '../context.js';
import { ZtmError } from '../../errors.js';
import { loadConfig } from '../../config/load.js';
import { compile } from '../../policy/snapshot.js';
import { authorize, authorizeAsync } from '../../policy/engine.js';
import { buildCustomProviders } from '../../policy/custom.js';
import type { Decision } from '../../policy/engine.js';
import { parseAuthzInput } from '../../policy/input.js';
import type { ParsedInput } from '../../policy/input.js';
import { collect, parseKeyValues, parsePort } from '../flags.js';
import { paint, parseOutputFormat, renderData, renderTable, terminalWidth } from '../output.js';

interface CheckOpts {
  config: string[];
  meshConfig?: string;
  requests?: string;
  output: string;
  workloadNamespace?: string;
  workloadLabels?: string;
  port?: string;
  sourcePrincipal?: string;
  sourceNamespace?: string;
  sourceIp?: string;
  remoteIp?: string;
  plaintext?: boolean;
  method: string;
  path?: string;
  host?: string;
  header: string[];
  claims?: string;
  requestPrincipal?: string;
  destinationIp?: string;
  destinationPort?: string;
  sni?: string;
  now?: string;
}

function portFlag(v: string | undefined, flag: string): number | undefined {
  return v === undefined ? undefined : parsePort(v, flag);
}

function singleRequest(o: CheckOpts): unknown {
  if (!o.workloadNamespace) throw new ZtmError('ZTM_USAGE', '--workload-namespace is required (or give --requests <file.jsonl>)');
  if (!o.path) throw new ZtmError('ZTM_USAGE', '--path is required (or give --requests <file.jsonl>)');
  const headers: Record<string, string> = {};
  for (const h of o.header) {
    const eq = h.indexOf('=');
    if (eq <= 0) throw new ZtmError('ZTM_USAGE', `--header expects name=value, got "${h}"`);
    headers[h.slice(0, eq)] = h.slice(eq + 1);
  }
  let claims: Record<string, unknown> | undefined;
  if (o.claims !== undefined) {
    try {
      claims = JSON.parse(o.claims);
    } catch (e) {
      throw new ZtmError('ZTM_USAGE', `--claims must be a JSON object: ${(e as Error).message}`);
    }
  }
  const req: Record<string, unknown> = {
    workload: { namespace: o.workloadNamespace, labels: o.workloadLabels ? parseKeyValues(o.workloadLabels, '--workload-labels') : {} },
    request: { method: o.method, path: o.path, ...(o.host ? { host: o.host } : {}), headers },
  };
  const port = portFlag(o.port, '--port');
  if (port !== undefined) req.port = port;
  if (o.sourcePrincipal || o.sourceNamespace || o.sourceIp || o.plaintext) {
    req.source = {
      ...(o.sourcePrincipal ? { principal: o.sourcePrincipal } : {}),
      ...(o.sourceNamespace ? { namespace: o.sourceNamespace } : {}),
      ...(o.sourceIp ? { ip: o.sourceIp } : {}),
      mtls: !o.plaintext,
    };
  }
  if (o.remoteIp) req.remoteIp = o.remoteIp;
  if (claims || o.requestPrincipal) req.auth = { ...(claims ? { claims } : {}), ...(o.requestPrincipal ? { principal: o.requestPrincipal } : {}) };
  const dport = portFlag(o.destinationPort, '--destination-port');
  if (o.destinationIp || dport) req.destination = { ...(o.destinationIp ? { ip: o.destinationIp } : {}), ...(dport ? { port: dport } : {}) };
  if (o.sni) req.sni = o.sni;
  return req;
}

export function registerAuthz(program: Command, ctx: CliContext): void {
  const authz = program.command('authz').description('authorization tools');
  authz
    .command('check')
    .description(
      'decide requests offline against a configuration, explaining each decision.\n' +
        'Exit status: 0 when every request is allowed (or, with --requests, every "expect" held), 1 when one is denied or an expectation failed, 2 usage, 4 invalid config.',
    )
    .requiredOption('-c, --config <path>', 'config file or directory (repeatable)', collect, [])
    .option('--mesh-config <file>', 'a MeshConfig file (trust domain, root namespace, path normalization)')
    .option('--requests <file>', 'JSONL file, one request per line ("-" for stdin)')
    .option('-o, --output <format>', 'table | json (one line per request) | yaml', 'table')
    .option('--workload-namespace <ns>', 'namespace of the workload receiving the request')
    .option('--workload-labels <k=v,...>', 'labels of the workload receiving the request')
    .option('--port <port>', 'the workload port the request arrives on')
    .option('--source-principal <principal>', 'peer identity from its certificate (cluster.local/ns/x/sa/y or spiffe://...)')
    .option('--source-namespace <ns>', 'peer namespace (derived from the principal when given)')
    .option('--source-ip <ip>', 'peer address (source.ip, ipBlocks)')
    .option('--remote-ip <ip>', 'original client address (remote.ip, remoteIpBlocks)')
    .option('--plaintext', 'the peer connected without mTLS (no principal, no namespace)')
    .option('--method <method>', 'HTTP method', 'GET')
    .option('--path <path>', 'request target as sent, e.g. /api/v1/items?x=1')
    .option('--host <host>', 'Host / :authority')
    .option('--header <k=v>', 'request header (repeatable)', collect, [])
    .option('--claims <json>', 'verified JWT claims as a JSON object (request.auth.*)')
    .option('--request-principal <iss/sub>', 'verified JWT principal (defaults to iss/sub from --claims)')
    .option('--destination-ip <ip>', 'destination.ip')
    .option('--destination-port <port>', 'destination.port (defaults to --port)')
    .option('--sni <name>', 'connection.sni')
    .option('--now <time>', 'evaluate Rego CUSTOM providers at this time (RFC 3339), e.g. 2026-03-02T10:30:00Z')
    .action(async (o: CheckOpts) => {
      const fmt = parseOutputFormat(o.output);
      const res = loadConfig(o.meshConfig ? [...o.config, o.meshConfig] : o.config);
      if (!res.ok) {
        for (const e of res.errors) ctx.stderr.write(`${e.format()}\n`);
        ctx.stderr.write(`ztmesh: ZTM_CONFIG_INVALID: configuration rejected (${res.errors.length} error${res.errors.length === 1 ? '' : 's'}); run \`ztmesh validate\` for details\n`);
        ctx.exitCode = Exit.CONFIG_INVALID;
        return;
      }
      const snap = compile(res.config);
      let nowNs: bigint | undefined;
      if (o.now !== undefined) {
        const t = Date.parse(o.now);
        if (Number.isNaN(t)) throw new ZtmError('ZTM_USAGE', `--now must be an RFC 3339 time, got "${o.now}"`);
        nowNs = BigInt(t) * 1_000_000n;
      }
      const custom = nowNs === undefined ? snap.custom : buildCustomProviders(snap.mesh, { nowNs });
      const inputs: (ParsedInput | { error: ZtmError; line: number })[] = [];
      if (o.requests) {
        let text: string;
        try {
          text = readFileSync(o.requests === '-' ? 0 : o.requests, 'utf8');
        } catch (e) {
          throw new ZtmError('ZTM_CONFIG_IO', `cannot read ${o.requests}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file: o.requests });
        }
        text.split('\n').forEach((raw, i) => {
          if (raw.trim() === '' || raw.trimStart().startsWith('//')) return;
          const where = { file: o.requests, line: i + 1 };
          try {
            let v: unknown;
            try {
              v = JSON.parse(raw);
            } catch (e) {
              throw new ZtmError('ZTM_INPUT_INVALID', `not valid JSON: ${(e as Error).message}`, where);
            }
            inputs.push({ ...parseAuthzInput(v, where), line: i + 1 } as ParsedInput);
          } catch (e) {
            if (e instanceof ZtmError) inputs.push({ error: e, line: i + 1 });
            else throw e;
          }
        });
      } else {
        inputs.push(parseAuthzInput(singleRequest(o), {}));
      }
      let failed = false;
      const rows: { input?: ParsedInput; decision?: Decision; error?: ZtmError; line?: number; expectationHeld?: boolean }[] = [];
      for (const it of inputs) {
        if ('error' in it) {
          failed = true;
          rows.push({ error: it.error, line: it.line });
          continue;
        }
        const d = custom.hasAsync
          ? await authorizeAsync(snap.authz.forWorkload(it.input.workload), it.input, { pathNormalization: snap.mesh.pathNormalization, custom: custom.async })
          : authorize(snap.authz, it.input, { pathNormalization: snap.mesh.pathNormalization, custom: custom.sync });
        const held = it.expect === undefined ? undefined : it.expect === d.decision;
        if (o.requests ? held === false : d.decision !== 'ALLOW') failed = true;
        rows.push({ input: it, decision: d, expectationHeld: held, line: (it as ParsedInput & { line?: number }).line });
      }
      if (fmt === 'json') {
        for (const r of rows) {
          const obj = r.error
            ? { error: { code: r.error.code, message: r.error.format() } }
            : { ...(r.input?.name ? { name: r.input.name } : {}), ...r.decision, ...(r.expectationHeld !== undefined ? { expect: r.input!.expect, expectationHeld: r.expectationHeld } : {}) };
          ctx.stdout.write(JSON.stringify(obj) + '\n');
        }
      } else if (fmt === 'yaml') {
        ctx.stdout.write(renderData('yaml', rows.map((r) => (r.error ? { error: r.error.format() } : { ...(r.input?.name ? { name: r.input.name } : {}), ...r.decision, ...(r.expectationHeld !== undefined ? { expectationHeld: r.expectationHeld } : {}) }))));
      } else {
        const w = ctx.stdout;
        const table = rows.map((r, i) => {
          if (r.error) return [String(r.line ?? i + 1), paint(w, 'red', 'ERROR'), '', '', '', '', r.error.message];
          const d = r.decision!;
          const dec = paint(w, d.decision === 'ALLOW' ? 'green' : 'red', d.decision) + (r.expectationHeld === false ? paint(w, 'red', ' ✗expected ' + r.input!.expect) : r.expectationHeld ? ' ✓' : '');
          return [r.input?.name ?? String(r.line ?? i + 1), dec, String(d.status), r.input!.input.request.method, d.normalizedPath ?? r.input!.input.request.path, d.policy ? `${d.policy}${d.rule !== null ? `#${d.rule}` : ''}` : '-', d.reason];
        });
        ctx.stdout.write(renderTable(['#', 'decision', 'status', 'method', 'path', 'policy', 'reason'], table, terminalWidth(w)));
        if (rows.length === 1 && rows[0].decision) {
          const d = rows[0].decision;
          // One request: the whole explanation, unabridged.
          ctx.stdout.write(`\n${d.reason}\n`);
          if (d.audit.length) ctx.stdout.write(`audit: ${d.audit.map((a) => `${a.policy}#${a.rule}`).join(', ')}\n`);
          for (const s of d.dryRun) ctx.stdout.write(`dry-run: ${s.policy} (${s.action}) ${s.matched ? `matched rule ${s.rule}` : 'did not match'} → would ${s.wouldBe === 'NO_EFFECT' ? 'have no effect' : s.wouldBe}\n`);
        }
        const expectations = rows.filter((r) => r.expectationHeld !== undefined);
        if (expectations.length) {
          const bad = expectations.filter((r) => r.expectationHeld === false).length;
          ctx.stdout.write(`\n${expectations.length - bad} passed, ${bad} failed\n`);
        }
      }
      ctx.exitCode = failed ? Exit.FAILED : Exit.OK;
    });
}
