/**
 * The `ztmesh` command. Thin: each subcommand lives in ./commands/<name>.ts,
 * parses its flags, calls the library and prints.
 */
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import type { CliContext } from './context.js';
import { Exit } from './context.js';
import { isZtmError } from '../errors.js';
import { registerValidate } from './commands/validate.js';
import { registerAuthz } from './commands/authz.js';
import { registerMesh } from './commands/mesh.js';
import { registerDemo } from './commands/demo.js';
import { registerCa } from './commands/ca.js';
import { registerToken } from './commands/token.js';
import { registerCert } from './commands/cert.js';
import { registerRego } from './commands/rego.js';
import { registerGateway } from './commands/gateway.js';
import { registerJwt } from './commands/jwt.js';

const require = createRequire(import.meta.url);
const pkg = require('../../../package.json') as { version: string };

export type Register = (program: Command, ctx: CliContext) => void;

/** Every subcommand module adds one line here. */
const registrations: Register[] = [registerDemo, registerValidate, registerAuthz, registerMesh, registerCa, registerToken, registerCert, registerRego, registerGateway, registerJwt];

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('ztmesh')
    .description('ztmesh: a zero-trust service mesh (SPIFFE identity, mTLS, Istio-compatible policy)')
    .version(pkg.version, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
    })
    .exitOverride();
  for (const reg of registrations) reg(program, ctx);
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
  const program = buildProgram(ctx);
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
