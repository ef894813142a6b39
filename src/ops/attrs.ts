/** Attribute schemas shared by several ops of the table. */
import { z } from 'zod';
import { DTYPES } from '../engine/backend.js';

const dim = z.number().int().min(0).max(2 ** 31 - 1);

/** A shape: an int or a list of ints (MXNet accepts `shape=1` and `shape=(4, 1)`). */
export const Shape = z.union([dim.transform((d) => [d]), z.array(dim).max(32)])
  .describe('a shape: an integer or a list of integers');

/** An axis or several; null (the default) means all. Negative axes count from the end. */
export const Axes = z.union([z.number().int(), z.array(z.number().int()).max(32), z.null()])
  .describe('an axis, a list of axes, or null for all');

export const DType = z.enum(DTYPES as unknown as ['float32', 'float64', 'int32', 'int64', 'uint8', 'float16']);
export const OptDType = DType.optional().describe('float32, float64, int32, int64, uint8 or float16; default: the session\'s default_dtype');

export const finite = z.number().describe('a number');
/** Ops whose values only make sense as floats (random samples) take these only. */
export const OptFloatDType = z.enum(['float32', 'float64']).optional().describe('float32 or float64; default: the session\'s default_dtype');
