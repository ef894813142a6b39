/**
 * The safetensors file format (https://huggingface.co/docs/safetensors), for every dtype of DTYPE_INFO:
 *
 *   8 bytes   N, the header length, little-endian unsigned
 *   N bytes   a JSON object {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {str: str}}
 *   the rest  the tensors' bytes, little-endian, row-major; offsets count from the start of this part
 *
 * The decoder validates the whole file before anything is built from it, and names the first
 * problem it finds, so that an import can refuse a file without touching the session. It knows
 * nothing of sessions: it turns bytes into (name, dtype, shape, bytes) entries and back.
 */
import type { DType } from '../engine/backend.js';
import { DTYPE_INFO, DTYPES, itemSize } from '../engine/backend.js';
import { fail } from '../errors.js';
import { record, table } from '../lookup.js';

export interface Tensor {
  name: string;
  dtype: DType;
  shape: number[];
  /** Little-endian element bytes, row-major (exactly prod(shape) * itemsize of them). */
  bytes: Uint8Array;
}

export interface SafetensorsFile {
  tensors: Tensor[];
  metadata: Record<string, string>;
}

const TO_FILE = (d: DType): string => DTYPE_INFO[d].safetensors;
const FROM_FILE = table<DType>(Object.fromEntries(DTYPES.map((d) => [DTYPE_INFO[d].safetensors, d])));
/** The dtypes of the format that gradserve cannot hold, so that the refusal can say so. */
const OTHER_DTYPES = new Set(['BOOL', 'I8', 'U16', 'I16', 'BF16', 'U32', 'U64', 'F8_E4M3', 'F8_E5M2', 'C64']);
const METADATA = '__metadata__';
/** The reference implementation refuses headers above 100 MB; so do we (before parsing them). */
export const MAX_HEADER_BYTES = 100_000_000;
const MAX_RANK = 32;

const bad = (detail: string) => fail('invalid_request', `not a valid safetensors file: ${detail}`);

/** What the header of a file says about one tensor: its bytes follow in the order given. */
export interface TensorEntry {
  name: string;
  dtype: DType;
  shape: number[];
  byteLength: number;
}

/**
 * The first part of a file with these tensors (callers sort them) and the metadata first: the
 * header's length and the header, padded with spaces to a multiple of 8 bytes as the reference
 * writer does, so that the data part starts aligned. The tensors' bytes follow it in order.
 */
export function safetensorsHeader(tensors: readonly TensorEntry[], metadata: Record<string, string> = {}): Buffer {
  const header = record<unknown>();
  if (Object.keys(metadata).length) header[METADATA] = metadata;
  let offset = 0;
  for (const t of tensors) {
    const end = offset + t.byteLength;
    header[t.name] = { dtype: TO_FILE(t.dtype), shape: t.shape, data_offsets: [offset, end] };
    offset = end;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const out = Buffer.alloc(8 + padded, 0x20);
  out.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(out, 8);
  return out;
}

/**
 * Reads and validates a whole file. `validName(name)` says why a tensor name is refused (or null).
 * Throws a 400 invalid_request naming the first problem; never returns a partial result.
 */
export function decodeSafetensors(file: Uint8Array, validName: (name: string) => string | null = () => null): SafetensorsFile {
  const buf = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  if (buf.length < 8) throw bad(`the file has ${buf.length} bytes; it needs at least 8 for the header length`);
  const n = buf.readBigUInt64LE(0);
  if (n > BigInt(buf.length - 8)) throw bad(`the header length is ${n} bytes but only ${buf.length - 8} bytes follow it`);
  if (n > BigInt(MAX_HEADER_BYTES)) throw bad(`the header length ${n} is above the limit of ${MAX_HEADER_BYTES} bytes`);
  const headerBytes = buf.subarray(8, 8 + Number(n));
  const data = buf.subarray(8 + Number(n));

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw bad('the header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw bad(`the header is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw bad('the header is not a JSON object');
  // JSON.parse keeps the last of two equal keys silently; a file with two tensors of one name is ambiguous.
  const dup = firstDuplicateKey(text);
  if (dup !== null) throw bad(`the header names \`${dup}\` twice`);

  const entries = header as Record<string, unknown>;
  const metadata = record<string>();
  if (METADATA in entries) {
    const m = entries[METADATA];
    if (m === null || typeof m !== 'object' || Array.isArray(m)) throw bad('`__metadata__` must be an object of strings');
    for (const [k, v] of Object.entries(m)) {
      if (typeof v !== 'string') throw bad(`\`__metadata__\`.${k} must be a string`);
      metadata[k] = v;
    }
  }

  const parsed: { name: string; dtype: DType; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, e] of Object.entries(entries)) {
    if (name === METADATA) continue;
    const why = validName(name);
    if (why) throw bad(`tensor \`${name}\`: ${why}`);
    if (e === null || typeof e !== 'object' || Array.isArray(e)) throw bad(`tensor \`${name}\` is not an object {dtype, shape, data_offsets}`);
    const { dtype, shape, data_offsets: offsets, ...rest } = e as Record<string, unknown>;
    const extra = Object.keys(rest);
    if (extra.length) throw bad(`tensor \`${name}\` has unknown field \`${extra[0]}\` (expected dtype, shape, data_offsets)`);
    if (typeof dtype !== 'string') throw bad(`tensor \`${name}\` has no dtype`);
    const dt = FROM_FILE[dtype];
    if (!dt) {
      throw bad(OTHER_DTYPES.has(dtype)
        ? `tensor \`${name}\` has dtype ${dtype}; gradserve holds ${Object.keys(FROM_FILE).join(', ')} only`
        : `tensor \`${name}\` has unknown dtype ${JSON.stringify(dtype)} (${Object.keys(FROM_FILE).join(', ')})`);
    }
    if (!Array.isArray(shape) || shape.length > MAX_RANK || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw bad(`tensor \`${name}\` has shape ${JSON.stringify(shape)}; a shape is a list of at most ${MAX_RANK} non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw bad(`tensor \`${name}\` has data_offsets ${JSON.stringify(offsets)}; expected [begin, end], non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) throw bad(`tensor \`${name}\` has data_offsets [${begin}, ${end}]: begin is after end`);
    if (end > data.length) throw bad(`tensor \`${name}\` ends at byte ${end} but the data part has ${data.length} bytes`);
    const size = shape.reduce((p: number, d: number) => p * d, 1) * itemSize(dt);
    if (end - begin !== size) throw bad(`tensor \`${name}\` of shape [${shape.join(', ')}] and dtype ${dtype} needs ${size} bytes but its data_offsets [${begin}, ${end}] hold ${end - begin}`);
    parsed.push({ name, dtype: dt, shape: shape as number[], begin, end });
  }

  // The ranges must tile the data part exactly: no overlap (two tensors sharing bytes) and no gap
  // (bytes no tensor owns), as the reference reader requires.
  const byStart = [...parsed].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  let prev: string | null = null;
  for (const t of byStart) {
    if (t.begin < at) throw bad(`tensor \`${t.name}\` [${t.begin}, ${t.end}] overlaps tensor \`${prev}\` (which ends at ${at})`);
    if (t.begin > at) throw bad(`bytes ${at} to ${t.begin} of the data part belong to no tensor`);
    at = t.end;
    prev = t.name;
  }
  if (at !== data.length) throw bad(`bytes ${at} to ${data.length} of the data part belong to no tensor`);

  // Header order is the file's order (JSON object order); callers may rely on it.
  const tensors = parsed.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, bytes: data.subarray(t.begin, t.end) }));
  return { tensors, metadata };
}

/**
 * The first key that occurs twice among the top-level keys of a JSON object text (already known
 * to parse), or null. A small scanner: it skips strings (with escapes) and tracks the depth.
 */
function firstDuplicateKey(text: string): string | null {
  const seen = new Set<string>();
  let depth = 0;
  // At depth 1, a string is a key when it follows `{` or `,` (values follow `:`).
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      depth++;
      expectKey = depth === 1 && c === '{';
    } else if (c === '}' || c === ']') {
      depth--;
    } else if (c === ',' && depth === 1) {
      expectKey = true;
    }
  }
  return null;
}
