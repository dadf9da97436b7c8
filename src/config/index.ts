export { loadConfig, parseConfigTexts, expandPaths, meshSettings, KINDS } from './load.js';
export type { ConfigSet, ConfigNotice, LoadResult } from './load.js';
export * from './types.js';
export { formatPath } from './schema.js';
