/**
 * Output helpers shared by every command: tables that fit a terminal, JSON/YAML for
 * scripts, colour only when writing to a TTY (and never when NO_COLOR is set).
 */
import { stringify as yamlStringify } from 'yaml';

export type OutputFormat = 'table' | 'json' | 'yaml';

export function parseOutputFormat(v: string | undefined, fallback: OutputFormat = 'table'): OutputFormat {
  if (v === undefined) return fallback;
  if (v === 'table' || v === 'json' || v === 'yaml') return v;
  throw new Error(`--output must be one of table, json, yaml (got "${v}")`);
}

export interface Writer {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export function useColour(w: Writer): boolean {
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== '') return false;
  if (process.env.FORCE_COLOR !== undefined && process.env.FORCE_COLOR !== '0') return true;
  return w.isTTY === true;
}

const CODES = { red: 31, green: 32, yellow: 33, blue: 34, magenta: 35, cyan: 36, grey: 90, bold: 1 } as const;
export type Colour = keyof typeof CODES;

export function paint(w: Writer, colour: Colour, s: string): string {
  return useColour(w) ? `\u001b[${CODES[colour]}m${s}\u001b[0m` : s;
}

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;
export function visibleLength(s: string): number {
  return s.replace(ANSI, '').length;
}

function truncate(s: string, width: number): string {
  if (visibleLength(s) <= width) return s;
  const plain = s.replace(ANSI, '');
  return width <= 1 ? plain.slice(0, width) : plain.slice(0, width - 1) + '…';
}

/**
 * Render rows as a table. Columns shrink (widest first) to fit `maxWidth`; cells
 * are truncated with an ellipsis rather than wrapped, so one row stays one line.
 */
export function renderTable(headers: string[], rows: string[][], maxWidth = 120): string {
  const widths = headers.map((h, i) => Math.max(visibleLength(h), ...rows.map((r) => visibleLength(r[i] ?? ''))));
  const sep = 2;
  const total = () => widths.reduce((a, b) => a + b, 0) + sep * (widths.length - 1);
  while (total() > maxWidth) {
    let wi = 0;
    for (let i = 1; i < widths.length; i++) if (widths[i] > widths[wi]) wi = i;
    if (widths[wi] <= 8) break;
    widths[wi]--;
  }
  const line = (cells: string[]) =>
    cells
      .map((c, i) => {
        const t = truncate(c ?? '', widths[i]);
        return i === cells.length - 1 ? t : t + ' '.repeat(widths[i] - visibleLength(t));
      })
      .join(' '.repeat(sep))
      .trimEnd();
  return [line(headers.map((h) => h.toUpperCase())), ...rows.map(line)].join('\n') + '\n';
}

export function terminalWidth(w: Writer): number {
  return w.isTTY && w.columns ? w.columns : 120;
}

export function renderData(format: 'json' | 'yaml', data: unknown): string {
  return format === 'json' ? JSON.stringify(data, null, 2) + '\n' : yamlStringify(data);
}
