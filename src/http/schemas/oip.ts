/** The Open Inference Protocol's wire format (KServe v2 / Triton REST), in zod. */
import { z } from 'zod';
import { Name } from './program.js';
import { OIP_DATATYPES } from '../../session/oip-codec.js';
import { SessionParams } from './api.js';

const TensorParameters = z.object({
  binary_data_size: z.number().int().min(0).optional()
    .describe('the tensor\'s data are this many raw little-endian bytes after the JSON (binary tensor data extension)'),
}).catchall(z.unknown());

export const OipDatatype = z.enum(OIP_DATATYPES);

/** OIP dimensions are int64; gradserve's arrays have at most 32 of them, each below 2^31. */
const OipShape = z.array(z.number().int().min(0).max(2 ** 31 - 1)).max(32);

export const OipTensor = z.object({
  name: Name,
  shape: OipShape,
  datatype: OipDatatype.describe('BOOL, UINT8, INT8, INT16, UINT16, INT32, UINT32, INT64, FP16, FP32 or FP64 (UINT64, BF16 and BYTES are refused with 422)'),
  data: z.any().optional().describe('the elements, row-major: a flat list, or nested lists of the shape; booleans for BOOL; absent with binary_data_size'),
  parameters: TensorParameters.optional(),
}).strict().meta({ id: 'OipTensor' });

/** A tensor as an answer carries it: `data`, or `parameters.binary_data_size` and bytes after the JSON. */
export const OipTensorAnswer = z.object({
  name: z.string(),
  shape: z.array(z.number().int()),
  datatype: OipDatatype,
  data: z.array(z.union([z.number(), z.boolean(), z.string()])).optional().describe('flat, row-major; non-finite floats as "NaN", "Infinity", "-Infinity"'),
  parameters: z.object({ binary_data_size: z.number().int() }).optional(),
}).meta({ id: 'OipTensorAnswer' });

export const InferRequest = z.object({
  // Triton's examples send the model's name in the body too; the path is what counts.
  model_name: z.string().optional(),
  model_version: z.string().optional(),
  id: z.string().optional(),
  parameters: z.object({ binary_data_output: z.boolean().optional().describe('answer every output as binary data') }).catchall(z.unknown()).optional(),
  inputs: z.array(OipTensor).max(256).describe('one tensor per parameter of the function, bound by `name`'),
  outputs: z.array(z.object({
    name: Name.describe('output0, output1, ... select results by position; other names name the results in order'),
    parameters: z.object({ binary_data: z.boolean().optional() }).catchall(z.unknown()).optional(),
  }).strict()).max(256).optional(),
}).strict().meta({ id: 'InferRequest' });

export const InferResponse = z.object({
  model_name: z.string(),
  id: z.string().optional(),
  outputs: z.array(OipTensorAnswer),
}).meta({ id: 'InferResponse' });

const MetadataTensor = z.object({ name: z.string(), datatype: OipDatatype, shape: z.array(z.number().int()) });

export const ModelMetadata = z.object({
  name: z.string(),
  versions: z.array(z.string()),
  platform: z.string(),
  inputs: z.array(MetadataTensor).describe('the parameters of the def; -1: a dimension of any size'),
  outputs: z.array(MetadataTensor),
}).meta({ id: 'ModelMetadata' });

export const ModelParams = SessionParams.extend({ model: Name.describe('a def of the session') });
export const VersionParams = ModelParams.extend({ version: z.string().min(1).max(64).describe('a def has one version, "1"') });

export const ServerMetadata = z.object({ name: z.string(), version: z.string(), extensions: z.array(z.string()) }).meta({ id: 'OipServerMetadata' });

export const OipBinaryBody = z.custom<Buffer>((v) => Buffer.isBuffer(v))
  .describe('binary tensor data extension: the JSON (its byte length in the header Inference-Header-Content-Length), then each binary tensor\'s bytes in order (Content-Type: application/octet-stream)');
