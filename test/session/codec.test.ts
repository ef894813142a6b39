/** Array data on the wire: nested lists, base64 and .npy, decoded in one pass. */
import { describe, expect, it } from 'vitest';
import { decodeBase64, parseNested, parseNpy } from '../../src/session/codec.js';

const refusal = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    return `${(e as { code: string }).code}: ${(e as Error).message}`;
  }
  return 'accepted';
};

describe('parseNested', () => {
  it('flattens nested, flat-with-shape and bare numbers, non-finite strings included', () => {
    expect(parseNested([[1, 2], [3, 'NaN']])).toEqual({ values: Float64Array.of(1, 2, 3, NaN), shape: [2, 2] });
    expect(parseNested([1, 2, 3, '-Infinity'], [2, 2])).toEqual({ values: Float64Array.of(1, 2, 3, -Infinity), shape: [2, 2] });
    expect(parseNested('Infinity')).toEqual({ values: Float64Array.of(Infinity), shape: [1] });
    expect(parseNested([])).toEqual({ values: new Float64Array(0), shape: [0] });
    expect(parseNested([[], []])).toEqual({ values: new Float64Array(0), shape: [2, 0] });
  });

  it('names the element that is wrong, at any depth', () => {
    expect(refusal(() => parseNested([[[1, 2], [3, 4]], [[5, 6], [7, null]]]))).toMatch(/^invalid_request: `data\[1\]\[1\]\[1\]` holds null/);
    expect(refusal(() => parseNested([1, 'x']))).toMatch(/`data\[1\]` holds "x"/);
    expect(refusal(() => parseNested([1, 2, [3]], [3, 1]))).toMatch(/`data\[2\]` holds \[3\]/);
    expect(refusal(() => parseNested([[1, 2], [3]]))).toMatch(/`data\[1\]` should be a list of 2 items/);
    expect(refusal(() => parseNested([[1, 2], 3]))).toMatch(/`data\[1\]` should be a list of 2 items/);
    expect(refusal(() => parseNested([[], [1]]))).toMatch(/`data\[1\]` should be a list of 0 items/);
    expect(refusal(() => parseNested([1, 2, 3], [2, 2]))).toMatch(/^shape_mismatch/);
  });
});

describe('decodeBase64', () => {
  const bytes = Buffer.from(Float32Array.of(1, 2, 3).buffer);
  it('accepts canonical and unpadded base64, refuses anything outside the alphabet', () => {
    expect(Buffer.from(decodeBase64(bytes.toString('base64'), [3], 'float32'))).toEqual(bytes);
    expect(Buffer.from(decodeBase64(Buffer.from([1, 2, 3, 4]).toString('base64').replace(/=+$/, ''), [1], 'float32'))).toEqual(Buffer.from([1, 2, 3, 4]));
    for (const bad of ['AAAA AAAA', 'AAA-AAAA', 'AAA_AAAA', 'AA==AAAA', 'AAAAAA!=', 'AAAAAA===']) {
      expect(refusal(() => decodeBase64(bad, [1], 'float32')), bad).toMatch(/not valid base64/);
    }
    expect(refusal(() => decodeBase64(bytes.toString('base64'), [4], 'float32'))).toMatch(/^shape_mismatch/);
  });
});

describe('parseNpy', () => {
  const npy = (descr: string, shape: string, data: Buffer, offset = 0) => {
    let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape}), }`;
    header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
    const head = Buffer.alloc(10);
    Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(head);
    head.writeUInt16LE(header.length, 8);
    // A leading pad byte puts the data at an odd address, as a body sliced from a socket may be.
    return Buffer.concat([Buffer.alloc(offset), head, Buffer.from(header, 'latin1'), data]).subarray(offset);
  };

  it('converts every supported dtype, aligned or not, little- or big-endian', () => {
    const want = Float64Array.of(-2, 0, 7);
    const cases: [string, Buffer][] = [
      ['<f4', Buffer.from(Float32Array.of(-2, 0, 7).buffer)],
      ['<f8', Buffer.from(want.buffer)],
      ['|i1', Buffer.from(Int8Array.of(-2, 0, 7).buffer)],
      ['<i2', Buffer.from(Int16Array.of(-2, 0, 7).buffer)],
      ['<i4', Buffer.from(Int32Array.of(-2, 0, 7).buffer)],
      ['<i8', Buffer.from(BigInt64Array.of(-2n, 0n, 7n).buffer)],
      ['>f4', Buffer.from(Float32Array.of(-2, 0, 7).buffer).swap32()],
      ['>f8', Buffer.from(want.buffer.slice(0)).swap64()],
    ];
    for (const [descr, data] of cases) {
      for (const offset of [0, 1]) {
        const a = parseNpy(npy(descr, '3,', data, offset));
        expect(a.shape).toEqual([3]);
        const other = a.dtype === 'float64' ? 'float32' : 'float64';
        expect(a.bytesFor(other), `${descr} at offset ${offset}`).toEqual(want);
      }
    }
    expect(parseNpy(npy('|u1', '3,', Buffer.from([0, 7, 255]))).bytesFor('float32')).toEqual(Float64Array.of(0, 7, 255));
    expect(parseNpy(npy('<u4', '1,', Buffer.from(Uint32Array.of(2 ** 32 - 1).buffer))).bytesFor('float64')).toEqual(Float64Array.of(2 ** 32 - 1));
  });
});
