/** Loads every family of the op table. Import this, not the family files. */
import './creation.js';
import './unary.js';
import './binary.js';
import './reduce.js';
import './shape.js';
import './linalg.js';
import './autograd.js';
import './index_ops.js';
import './join.js';
import './nn.js';
import './conv.js';
import './optim.js';

export { allOps, lookupOp, suggestOps } from './registry.js';
export type { OpDef } from './registry.js';
