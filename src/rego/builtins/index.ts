/** Loads every built-in group into the registry. */
import './core.js';
import './strings.js';
import './encoding.js';
import './time.js';
import './net.js';
import './misc.js';
import './crypto.js';
import './x509.js';
import './jsonschema.js';
export { BUILTINS, type BuiltinDef, type BuiltinCtx } from './registry.js';
