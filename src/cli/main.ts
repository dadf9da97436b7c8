/**
 * The `ztmesh` command. Thin: each subcommand lives in ./commands/<name>.ts,
 * parses its flags, calls the library and prints.
 */
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import type { CliContext } from './context.js';
import { Exit } from './context.js';
import { isZtmError } from '../errors.js';

const require = createRequire(import.meta.url);
const pkg = require('../../../package.json') as { version: string };

export type Register = (program: Command, ctx: CliContext) => void;

/**
 * Every subcommand module, with the command names it registers. Modules load lazily:
 * a sidecar (`ztmesh proxy`) loads only what its command needs, not the whole CLI.
 */
const COMMANDS: [string[], () => Promise<Register>][] = [
  [['demo'], async () => (await import('./commands/demo.js')).registerDemo],
  [['validate'], async () => (await import('./commands/validate.js')).registerValidate],
  [['authz'], async () => (await import('./commands/authz.js')).registerAuthz],
  [['control', 'proxy', 'quarantine', 'status'], async () => (await import('./commands/mesh.js')).registerMesh],
  [['ca'], async () => (await import('./commands/ca.js')).registerCa],
  [['token'], async () => (await import('./commands/token.js')).registerToken],
  [['cert'], async () => (await import('./commands/cert.js')).registerCert],
  [['rego'], async () => (await import('./commands/rego.js')).registerRego],
  [['gateway'], async () => (await import('./commands/gateway.js')).registerGateway],
  [['jwt'], async () => (await import('./commands/jwt.js')).registerJwt],
];

export async function buildProgram(ctx: CliContext, argv?: string[]): Promise<Command> {
  const program = new Command('ztmesh')
    .description('ztmesh: a zero-trust service mesh (SPIFFE identity, mTLS, Istio-compatible policy)')
    .version(pkg.version, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
    })
    .exitOverride();
  const first = argv?.slice(2).find((a) => !a.startsWith('-'));
  const only = first === undefined ? undefined : COMMANDS.find(([names]) => names.includes(first));
  for (const [, load] of only ? [only] : COMMANDS) (await load())(program, ctx);
  for (const c of program.commands) propagate(c, ctx);
  return program;
}

function propagate(cmd: Command, ctx: CliContext): void {
  cmd.exitOverride().configureOutput({
    writeOut: (s) => ctx.stdout.write(s),
    writeErr: (s) => ctx.stderr.write(s),
  });
  for (const c of cmd.commands) propagate(c, ctx);
}

export async function main(argv: string[], io?: Partial<Pick<CliContext, 'stdout' | 'stderr'>>): Promise<number> {
  const ctx: CliContext = {
    stdout: io?.stdout ?? process.stdout,
    stderr: io?.stderr ?? process.stderr,
    exitCode: Exit.OK,
  };
  const program = await buildProgram(ctx, argv);
  try {
    await program.parseAsync(argv);
    return ctx.exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return Exit.OK;
      return e.exitCode === 0 ? Exit.OK : Exit.USAGE;
    }
    if (isZtmError(e)) {
      ctx.stderr.write(`ztmesh: ${e.code}: ${e.format()}\n`);
      return e.code === 'ZTM_USAGE' ? Exit.USAGE : e.code === 'ZTM_CONFIG_IO' ? Exit.IO : Exit.FAILED;
    }
    ctx.stderr.write(`ztmesh: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    return Exit.INTERNAL;
  }
}
