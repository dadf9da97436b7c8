import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { runDemo } from '../../demo/ecommerce.js';

export function registerDemo(program: Command, ctx: CliContext): void {
  program
    .command('demo')
    .description('run a zero-trust e-commerce platform on loopback: control plane, five services with sidecars, policies, the edge gateway with an identity provider; drive traffic and show what is allowed and denied')
    .option('--once', 'run the script and exit: 0 only if every expectation held')
    .option('--keep', 'keep the working directory (logs, certificates) after exit')
    .action(async (o: { once?: boolean; keep?: boolean }) => {
      ctx.exitCode = await runDemo({ once: !!o.once, keep: !!o.keep, stdout: ctx.stdout, stderr: ctx.stderr });
    });
}
