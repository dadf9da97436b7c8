/** Loads every built-in group into the registry. */
import './core.js';
import './strings.js';
export { BUILTINS, type BuiltinDef, type BuiltinCtx } from './registry.js';
