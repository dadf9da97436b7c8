import type { Writer } from './output.js';

/** What every command gets: where to write, and how to set the process exit code. */
export interface CliContext {
  stdout: Writer;
  stderr: Writer;
  /** Exit code the command settles on; the last assignment wins. */
  exitCode: number;
}

/** Exit codes scripts can trust. */
export const Exit = {
  OK: 0,
  /** The check ran and the answer is "no": invalid config, a denied request, a failed expectation. */
  FAILED: 1,
  /** The command was called wrongly (unknown flag, missing argument). */
  USAGE: 2,
  /** Something the command needed could not be read or reached. */
  IO: 3,
  /** The configuration it was given is invalid (the errors are printed). */
  CONFIG_INVALID: 4,
  /** A bug. */
  INTERNAL: 70,
} as const;
