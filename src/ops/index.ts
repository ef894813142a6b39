/** Loads every family of the op table. Import this, not the family files. */
import './creation.js';
import './unary.js';
import './binary.js';
import './reduce.js';
import './shape.js';
import './linalg.js';
import './autograd.js';

export { allOps, lookupOp, suggestOps } from './registry.js';
export type { OpDef } from './registry.js';
