/**
 * The TypeScript client sends typed arrays as bytes (binary parts of a multipart program), and one
 * larger than the server's request body in pieces joined on the server, so its size is bounded by
 * the session's quota, not the body's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../clients/typescript/src/index.js';
import { startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer({ GRADSERVE_MAX_BODY_BYTES: String(1 << 20) }); });
afterAll(async () => { await srv.close(); });

describe('typed-array uploads', () => {
  it('small Float32Array and Float64Array arrive exactly, with their shape', async () => {
    const gs = await connect(srv.url);
    const a = await gs.nd.array(new Float32Array([1.5, -2, 3.25, 1e-8, 7, 8]), { shape: [2, 3] });
    expect(a.shape).toEqual([2, 3]);
    expect(await a.tolist()).toEqual([[1.5, -2, 3.25], [1e-8, 7, 8]]);
    const b = await gs.nd.array(new Float64Array([0.1, 1e300]));
    expect(b.dtype).toBe('float64');
    expect(await b.tolist()).toEqual([0.1, 1e300]);
    await gs.close();
  });

  it('an array three times the body limit goes in pieces and is whole on the server', async () => {
    const gs = await connect(srv.url);
    expect(gs.bodyLimit).toBe(1 << 20);
    const n = 3 * (1 << 18) + 5; // 3 MiB and a bit, in float32
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = i % 1000;
    const x = await gs.nd.array(data, { shape: [n] });
    expect(x.shape).toEqual([n]);
    const total = data.reduce((s, v) => s + v, 0);
    expect(await x.sum().asscalar()).toBeCloseTo(total, -3);
    expect(await x.op('slice', { begin: [n - 3], end: [n] }).tolist()).toEqual(Array.from(data.slice(n - 3)));
    // the pieces are gone: x and the two results above are all that is bound
    const listing = (await gs.api.GET('/v1/sessions/{sid}/arrays', { params: { path: { sid: gs.id } } })).data!;
    expect(listing.arrays.map((d) => d.name).filter((n) => n.startsWith(x.ref))).toEqual([x.ref]);
    expect(listing.arrays).toHaveLength(3);
    await gs.close();
  });

  it('a long upload reports its progress to onProgress, and draws a bar on stderr only when asked or on a terminal', async () => {
    const gs = await connect(srv.url);
    const n = 3 * (1 << 18);
    const seen: [number, number][] = [];
    const written: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    const before = process.env.GRADSERVE_PROGRESS;
    process.env.GRADSERVE_PROGRESS = '1';
    // The real stream, read as it is written to: the bar's text is what a terminal would show.
    process.stderr.write = ((chunk: string) => { written.push(String(chunk)); return true; }) as typeof process.stderr.write;
    try {
      await gs.nd.array(new Float32Array(n), { shape: [n], onProgress: (done, total) => seen.push([done, total]) });
    } finally {
      process.stderr.write = write;
      if (before === undefined) delete process.env.GRADSERVE_PROGRESS; else process.env.GRADSERVE_PROGRESS = before;
    }
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.every(([, total]) => total === 4 * n)).toBe(true);
    expect(seen.map(([d]) => d)).toEqual([...seen.map(([d]) => d)].sort((a, b) => a - b));
    expect(seen.at(-1)![0]).toBe(4 * n);
    expect(written.join('')).toMatch(/\[#+\] uploading 786432 float32: 100\.0% \(3 of 3 MiB/);
    // Off by default where stderr is not a terminal (the test runner's): a quiet upload.
    const quiet: string[] = [];
    process.stderr.write = ((chunk: string) => { quiet.push(String(chunk)); return true; }) as typeof process.stderr.write;
    try {
      await gs.nd.array(new Float32Array(n), { shape: [n] });
    } finally {
      process.stderr.write = write;
    }
    if (!process.stderr.isTTY) expect(quiet.join('')).not.toMatch(/uploading/);
    await gs.close();
  });
});
