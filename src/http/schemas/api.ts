/**
 * The wire format of every endpoint, in zod: requests are validated with these, answers typed by
 * them, and openapi.yaml and schemas/*.json are generated from them (scripts/generate-spec.ts).
 */
import { z } from 'zod';
import { Arg, Name, NestedNums, Ref, Statement, GradReq, ScopeKind } from './program.js';
import { LIMITS } from '../../program/format.js';
import { DTYPES } from '../../engine/backend.js';
import { fastChecked, isArrayBody, isOpsBody } from './fast.js';

export const DTypeSchema = z.enum(DTYPES as unknown as ['float32', 'float64', 'int32', 'int64', 'uint8', 'float16']);
/** A session's default dtype: one of the floats, since created arrays are differentiable by default. */
export const DefaultDTypeSchema = z.enum(['float32', 'float64']);
const Shape = z.array(z.number().int().min(0).max(2 ** 31 - 1)).max(32);

export const Problem = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  code: z.string().describe('stable machine-readable error code'),
  instance: z.string().optional(),
}).catchall(z.unknown()).meta({ id: 'Problem' });

export const SessionParams = z.object({ sid: z.string().min(1).max(128) });
export const ArrayParams = SessionParams.extend({ name: Name });
export const TapeParams = SessionParams.extend({ tid: z.string().min(1).max(64) });

export const CreateSession = z.object({
  ttl_seconds: z.number().int().min(1).optional().describe('idle time before the session expires; each request renews it'),
  seed: z.number().int().min(0).max(2 ** 32 - 1).optional().describe('seed of the session\'s random stream (random when absent)'),
  default_dtype: DefaultDTypeSchema.optional().describe('dtype of created arrays unless an op says otherwise (float32)'),
}).strict().meta({ id: 'CreateSession' });

export const Seed = z.object({ seed: z.number().int().min(0).max(2 ** 32 - 1) }).strict().meta({ id: 'Seed' });

const SessionBase = z.object({
  id: z.string(),
  created_at: z.string(),
  expires_at: z.string(),
  ttl_seconds: z.number(),
  seed: z.number(),
  default_dtype: DefaultDTypeSchema,
});

const SessionLimits = z.object({
  bytes: z.number(),
  array_elements: z.number(),
  tape_nodes: z.number(),
  statements: z.number(),
  body_bytes: z.number().describe('the largest request body (GRADSERVE_MAX_BODY_BYTES): a client splits its uploads below it'),
}).meta({ id: 'SessionLimits' });

export const SessionCreated = SessionBase.extend({
  token: z.string().describe('send as `Authorization: Bearer <token>` on every request of this session'),
  limits: SessionLimits,
}).meta({ id: 'SessionCreated' });

export const SessionInfo = SessionBase.extend({
  arrays: z.number().int().describe('number of bound names'),
  bytes: z.number().int().describe('native bytes held: arrays, gradients and saved tape values'),
  peak_bytes: z.number().int().describe('the most native bytes the session has held at once, within requests included (for sizing its quota)'),
  buffers: z.number().int(),
  tapes: z.number().int(),
  tape_nodes: z.number().int(),
  is_recording: z.boolean(),
  is_training: z.boolean(),
  limits: SessionLimits,
  definitions: z.array(z.object({
    name: z.string(),
    kind: z.enum(['function', 'class']),
    signature: z.string().describe('parameters of a function; methods of a class'),
    source: z.string(),
  })).describe('functions and classes the session\'s programs defined, in order of definition'),
}).meta({ id: 'SessionInfo' });

export const Format = z.enum(['nested', 'flat', 'base64']);

export const ArrayDescriptor = z.object({
  name: z.string(),
  shape: z.array(z.number()),
  dtype: DTypeSchema,
  grad_req: GradReq.nullable().describe('null when the array has no gradient buffer'),
  fresh_grad: z.boolean().optional().describe('for an array with a gradient buffer: whether a backward wrote it since it was last cleared (MXNet _fresh_grad; clear it with a set_grad_state statement)'),
  recorded: z.boolean().describe('the array has autograd history that backward can walk'),
  tape: z.string().optional().describe('id of the tape that recorded the array (GET /tapes/{tid} draws it); absent when it has no history'),
  data: z.any().optional().describe('nested lists (default), a flat list, or base64 little-endian bytes; non-finite numbers as "NaN", "Infinity", "-Infinity"'),
  format: Format.optional(),
}).meta({ id: 'ArrayDescriptor' });

// The elements are checked (and refused with their index) by the codec as it reads them.
const ListData = z.union([NestedNums, z.array(z.any())], { error: 'expected a number, nested lists of numbers, or a flat list with `shape`' });

export const ArrayBody = fastChecked(z.union([
  z.object({
    name: Name,
    data: ListData.describe('nested lists, or a flat list with `shape`'),
    shape: Shape.optional(),
    dtype: DTypeSchema.optional(),
  }).strict(),
  z.object({
    name: Name,
    data_base64: z.string().describe('little-endian bytes of the array, row-major'),
    shape: Shape,
    dtype: DTypeSchema.optional(),
  }).strict(),
], { error: 'the body is {name, data, shape?, dtype?} or {name, data_base64, shape, dtype?}' }).meta({ id: 'ArrayBody' }), (b) => isArrayBody(b, true));
export type ArrayBody = z.infer<typeof ArrayBody>;

export const PutArrayBody = fastChecked(z.union([
  z.object({ data: ListData, shape: Shape.optional(), dtype: DTypeSchema.optional(), name: Name.optional() }).strict(),
  z.object({ data_base64: z.string(), shape: Shape, dtype: DTypeSchema.optional(), name: Name.optional() }).strict(),
], { error: 'the body is {data, shape?, dtype?} or {data_base64, shape, dtype?}' }).meta({ id: 'PutArrayBody' }), (b) => isArrayBody(b, false));
export type PutArrayBody = z.infer<typeof PutArrayBody>;

export const NpyQuery = z.object({ name: Name.optional(), dtype: DTypeSchema.optional() });

export const ReadQuery = z.object({
  format: z.enum(['nested', 'flat', 'base64', 'oip']).optional()
    .describe('oip: the Open Inference Protocol tensor {name, shape, datatype, data}'),
  binary_data: z.enum(['true', 'false']).optional()
    .describe('with format=oip: the data as raw bytes after the JSON (binary tensor data extension, application/octet-stream)'),
  datatype: z.literal('BOOL').optional().describe('with format=oip: answer the elements as BOOL (nonzero is true)'),
});

export const ArrayList = z.object({ arrays: z.array(ArrayDescriptor) });

export const AttachGradBody = z.object({ grad_req: GradReq.optional() }).strict().meta({ id: 'AttachGrad' });

const HeadGrad = z.union([Arg, z.null()]);

export const ArrayBackwardBody = z.object({
  head_grad: HeadGrad.optional().describe('gradient of the head (its exact shape); default ones'),
  retain_graph: z.boolean().optional(),
  train_mode: z.boolean().optional(),
  detect_anomaly: z.boolean().optional().describe('anomaly mode for this request: the first op that makes NaN or Inf stops it with 422 anomaly_detected'),
}).strict().meta({ id: 'ArrayBackward' });

export const Grads = z.object({ grads: z.record(z.string(), ArrayDescriptor) }).meta({ id: 'Grads' });

const Heads = z.union([Ref, z.array(Ref).min(1).max(256)]);

export const BackwardBody = z.object({
  heads: Heads,
  head_grads: z.array(HeadGrad).optional(),
  retain_graph: z.boolean().optional(),
  train_mode: z.boolean().optional(),
  detect_anomaly: z.boolean().optional().describe('anomaly mode for this request: the first op that makes NaN or Inf stops it with 422 anomaly_detected'),
}).strict().meta({ id: 'Backward' });

export const GradBody = z.object({
  heads: Heads,
  variables: z.union([Name, z.array(Name).min(1).max(256)]),
  head_grads: z.array(HeadGrad).optional(),
  retain_graph: z.boolean().optional(),
  create_graph: z.boolean().optional(),
  train_mode: z.boolean().optional(),
  out: z.array(Name).optional().describe('names to bind the gradients to, aligned with variables'),
  detect_anomaly: z.boolean().optional().describe('anomaly mode for this request: the first op that makes NaN or Inf stops it with 422 anomaly_detected'),
}).strict().meta({ id: 'Grad' });

const NameOrNames = z.union([Name, z.array(Name).min(1).max(256)]);

export const TransformBody = z.object({
  function: Name.describe('a def of the session (define it with a program sent to POST /ops)'),
  inputs: NameOrNames.describe('the arrays to differentiate at: one name, or a list (the answer is then a list per input)'),
  v: NameOrNames.optional().describe('vjp: one cotangent per output; jvp and hvp: one tangent per input; may be left out where each pairs with one element'),
  create_graph: z.boolean().optional().describe('record the result, so that it differentiates again'),
  out: z.array(Name).max(65536).optional().describe("names to bind the result's arrays to, in order (row by row for nested results); new names without it"),
  fetch: z.boolean().optional().describe('answer the arrays with their data (default true)'),
  format: Format.optional(),
}).strict().meta({ id: 'Transform' });

const ArrayTree = z.union([ArrayDescriptor, z.array(ArrayDescriptor), z.array(z.array(ArrayDescriptor))]);

export const TransformAnswer = z.object({
  value: ArrayTree.optional().describe("the function's value at the inputs (vjp, jvp, hvp), as torch.autograd.functional answers it first"),
  result: ArrayTree.describe('the vjp, jvp, Jacobian, Hessian or Hessian-vector product: one array, a list per input or output, or a list of lists'),
}).meta({ id: 'TransformAnswer' });

export const GradcheckBody = z.object({
  function: Name.describe('a def of the session'),
  inputs: NameOrNames,
  eps: z.number().positive().max(1).optional().describe('step of the central differences (default 1e-6)'),
  atol: z.number().min(0).optional().describe('default 1e-5'),
  rtol: z.number().min(0).optional().describe('default 1e-3'),
  second_order: z.boolean().optional().describe('check the gradient of v^T J (gradgradcheck) instead of J'),
  grad_outputs: NameOrNames.optional().describe('the v of second_order; default a fixed array of distinct values'),
}).strict().meta({ id: 'Gradcheck' });

export const GradcheckAnswer = z.object({
  passed: z.boolean(),
  inputs: z.array(z.object({
    input: z.number().int(),
    method: z.enum(['vjp', 'jvp']).describe('which side of the Jacobian the largest error is in'),
    output: z.number().int(),
    output_index: z.array(z.number().int()),
    input_index: z.array(z.number().int()),
    analytic: z.number(),
    numeric: z.number(),
    error: z.number(),
  })).describe('one per input: its largest error and where it is'),
}).meta({ id: 'GradcheckAnswer' });

export const AutogradState = z.object({
  is_recording: z.boolean(),
  is_training: z.boolean(),
  scopes: z.array(z.object({ kind: ScopeKind, tape: z.string().nullable(), is_recording: z.boolean(), is_training: z.boolean() })).optional(),
  tape: z.string().nullable().optional(),
}).meta({ id: 'AutogradState' });

export const ScopeBody = z.object({ train_mode: z.boolean().optional() }).strict();

export const OpsBody = fastChecked(z.object({
  ops: z.array(Statement).max(LIMITS.statements).optional(),
  expr: z.string().optional().describe('the same program written as MXNet Python (see the contract\'s grammar)'),
  record: z.boolean().optional().describe('run inside a record scope that closes at the end of the request'),
  train_mode: z.boolean().optional(),
  detect_anomaly: z.boolean().optional().describe('anomaly mode for this request: the first op that makes NaN or Inf stops it with 422 anomaly_detected'),
  fetch: z.union([z.boolean(), z.array(Ref)]).optional().describe('names whose data the answer carries (true: all bound names)'),
  format: Format.optional(),
}).strict().meta({ id: 'Ops' }), isOpsBody);

export const OpsAnswer = z.object({
  outputs: z.record(z.string(), ArrayDescriptor),
  result: z.union([z.number(), z.string(), z.boolean(), ArrayDescriptor]).optional(),
  printed: z.string().optional().describe('what print() wrote, when the program printed'),
  results: z.array(ArrayDescriptor).optional().describe('a last bare expression that is a tuple of arrays: each bound to a new name'),
  autograd: AutogradState,
}).meta({ id: 'OpsAnswer' });

export const OpInfo = z.object({
  name: z.string(),
  aliases: z.array(z.string()),
  doc: z.string(),
  inputs: z.array(z.string()),
  variadic: z.boolean(),
  positional: z.array(z.string()),
  attrs: z.any().describe('JSON Schema of the attributes, with types and defaults'),
  differentiable: z.boolean(),
  derivative_order: z.number().int().min(0)
    .describe('the highest order of derivative the generated tests check against finite differences (0: not differentiable)'),
  mode_dependent: z.boolean(),
  scalar_inputs: z.boolean(),
  outputs: z.union([z.number().int().min(1), z.string()])
    .describe('how many outputs a call returns, or the attribute that says (split: "num_outputs")'),
  dtypes: z.array(z.array(DTypeSchema))
    .describe('for each input (in the order of `inputs`), the dtypes it takes; any other is 422 dtype_mismatch'),
});

export const OpList = z.object({ ops: z.array(OpInfo) }).meta({ id: 'OpList' });

export const TapeSummary = z.object({
  id: z.string(),
  created_at: z.string(),
  open: z.boolean(),
  nodes: z.number().int(),
  saved_bytes: z.number().int(),
});

export const TapeList = z.object({ tapes: z.array(TapeSummary) });
export const TapeQuery = z.object({
  format: z.enum(['json', 'dot', 'svg', 'png']).optional(),
  labels: z.string().max(65536).optional().describe('a JSON object of names to the labels a drawing shows for them (a client\'s own variable names for its arrays): {"_py2": "x"}'),
});

export const SafetensorsFile = z.any().describe(
  'a safetensors file: an 8-byte little-endian header length N, N bytes of JSON header '
  + '{name: {dtype: "F32"|"F64", shape, data_offsets: [begin, end]}, "__metadata__"?: {...}}, then the tensor bytes; '
  + 'gradients are named `name.grad`',
);

export const SnapshotParams = SessionParams.extend({ name: Name });

export const SnapshotBody = z.object({
  name: Name.describe('the snapshot\'s name; taking one of a name already used replaces it'),
}).strict().meta({ id: 'SnapshotBody' });

export const SnapshotInfo = z.object({
  name: z.string(),
  created_at: z.string(),
  arrays: z.number().int().describe('bound names it holds'),
  definitions: z.number().int().describe('functions and classes it holds'),
  bytes: z.number().int().describe('its arrays and gradient buffers, as safetensors bytes'),
}).meta({ id: 'SnapshotInfo' });

export const SnapshotList = z.object({ snapshots: z.array(SnapshotInfo) }).meta({ id: 'SnapshotList' });

export const RestoreBody = z.object({ snapshot: Name }).strict().meta({ id: 'RestoreBody' });

export const ForkBody = z.object({
  ttl_seconds: z.number().int().min(1).optional().describe("the new session's; default the source's"),
}).strict().meta({ id: 'ForkBody' });

export const ImportAnswer = z.object({
  arrays: z.array(ArrayDescriptor).describe('the bindings the file created or replaced, in file order'),
  metadata: z.record(z.string(), z.string()).describe('the file\'s __metadata__ (empty when it has none)'),
}).meta({ id: 'ImportAnswer' });
