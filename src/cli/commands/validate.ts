import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { Exit } from '../context.js';
import { loadConfig } from '../../config/load.js';
import { paint, parseOutputFormat, renderData } from '../output.js';

export function registerValidate(program: Command, ctx: CliContext): void {
  program
    .command('validate')
    .description('validate configuration files and directories (exit 0 when valid, 1 with every error otherwise)')
    .argument('<paths...>', 'YAML/JSON files or directories (read recursively)')
    .option('-o, --output <format>', 'table | json | yaml', 'table')
    .action((paths: string[], opts: { output: string }) => {
      const fmt = parseOutputFormat(opts.output);
      const res = loadConfig(paths);
      if (fmt !== 'table') {
        const data = res.ok
          ? { valid: true, resources: res.config.resources.map((r) => ({ kind: r.kind, namespace: r.metadata.namespace, name: r.metadata.name, file: r.source.file, line: r.source.line })), notices: res.notices, errors: [] }
          : { valid: false, resources: [], notices: res.notices, errors: res.errors.map((e) => e.toJSON()) };
        ctx.stdout.write(renderData(fmt, data));
        ctx.exitCode = res.ok ? Exit.OK : Exit.FAILED;
        return;
      }
      for (const n of res.notices) ctx.stderr.write(`${n.file}:${n.line}: ${paint(ctx.stderr, 'yellow', 'notice')}: ${n.message}\n`);
      if (!res.ok) {
        for (const e of res.errors) ctx.stdout.write(`${e.format()}\n`);
        ctx.stderr.write(paint(ctx.stderr, 'red', `✗ ${res.errors.length} error${res.errors.length === 1 ? '' : 's'}: configuration rejected\n`));
        ctx.exitCode = Exit.FAILED;
        return;
      }
      const counts = new Map<string, number>();
      for (const r of res.config.resources) counts.set(r.kind, (counts.get(r.kind) ?? 0) + 1);
      const summary = [...counts].map(([k, n]) => `${n} ${k}`).join(', ') || 'no resources';
      ctx.stdout.write(`${paint(ctx.stdout, 'green', '✓')} valid: ${summary} in ${res.config.files.length} file${res.config.files.length === 1 ? '' : 's'}\n`);
      ctx.exitCode = Exit.OK;
    });
}
