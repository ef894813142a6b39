/** Tapes drawn as PNG (the SVG rasterised by resvg, WASM), and long chains wrapped into rows. */
import { inflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, Client, type TestServer } from '../helpers/server.js';
import { chapterTape } from '../helpers/tapes.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer(); });
afterAll(async () => { await srv.close(); });

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Width and height from the IHDR chunk, which a valid PNG has first, right after the signature. */
function pngSize(png: Buffer): { width: number; height: number } {
  expect(png.subarray(0, 8)).toEqual(SIGNATURE);
  expect(png.toString('latin1', 12, 16)).toBe('IHDR');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

/** The pixels' bytes, filters left in: enough to see that the image is not blank. */
function idat(png: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let at = 8; at < png.length;) {
    const len = png.readUInt32BE(at);
    if (png.toString('latin1', at + 4, at + 8) === 'IDAT') parts.push(png.subarray(at + 8, at + 8 + len));
    at += 12 + len;
  }
  return inflateSync(Buffer.concat(parts));
}

const binary = (res: NodeJS.ReadableStream, cb: (e: Error | null, b: Buffer) => void) => {
  const chunks: Buffer[] = [];
  res.on('data', (d: Buffer) => chunks.push(d));
  res.on('end', () => cb(null, Buffer.concat(chunks)));
};
const text = (res: NodeJS.ReadableStream, cb: (e: Error | null, s: string) => void) => {
  let s = '';
  res.on('data', (d: Buffer) => (s += d));
  res.on('end', () => cb(null, s));
};

const chapter = () => chapterTape(srv.url);

/** A tape of `n` sines in a row. */
async function chain(n: number): Promise<{ c: Client; tape: string }> {
  const c = await Client.open(srv.url);
  await c.expr('x = nd.ones((2, 3))');
  await c.post('/arrays/x/attach-grad', {}).expect(200);
  const r = await c.expr(['y = x', ...Array.from({ length: n }, () => 'y = nd.sin(y)')].join('\n'), { record: true });
  return { c, tape: r.outputs.y.tape };
}

const svgSize = (svg: string) => {
  const m = /<svg width="([\d.]+)pt" height="([\d.]+)pt"/.exec(svg);
  expect(m).not.toBeNull();
  return { width: Number(m![1]), height: Number(m![2]) };
};

describe('GET /tapes/{tid}?format=png', () => {
  it('answers image/png of the SVG\'s size (4/3 pixel a point), not blank', async () => {
    const { c, tape } = await chapter();
    const r = await c.get(`/tapes/${tape}?format=png`).buffer(true).parse(binary).expect(200);
    expect(r.headers['content-type']).toBe('image/png');
    const png = r.body as Buffer;
    const size = pngSize(png);
    const svg = svgSize((await c.get(`/tapes/${tape}?format=svg`).buffer(true).parse(text).expect(200)).body as string);
    expect(size.width).toBeCloseTo((svg.width * 4) / 3, -1);
    expect(size.height).toBeCloseTo((svg.height * 4) / 3, -1);
    // Drawn on white, with more than white in it: its pixel bytes take many values.
    const pixels = idat(png);
    expect(new Set(pixels).size).toBeGreaterThan(16);
  });

  it('?labels apply to the picture: a longer name draws a wider box; bad labels and unknown tapes are refused', async () => {
    const { c, tape } = await chapter();
    const plain = pngSize((await c.get(`/tapes/${tape}?format=png`).buffer(true).parse(binary).expect(200)).body);
    const labels = encodeURIComponent(JSON.stringify({ x: 'a_much_longer_name_for_the_weights' }));
    const named = pngSize((await c.get(`/tapes/${tape}?format=png&labels=${labels}`).buffer(true).parse(binary).expect(200)).body);
    expect(named.width).toBeGreaterThan(plain.width + 50);
    const bad = await c.get(`/tapes/${tape}?format=png&labels=${encodeURIComponent('{"x": 3}')}`);
    expect(bad.status).toBe(400);
    expect(bad.body.arg).toBe('labels');
    expect((await c.get('/tapes/t999?format=png').expect(404)).body.code).toBe('not_found');
  });
});

describe('long chains are drawn in rows', () => {
  it('200 sines in a row: the SVG and the PNG stay within 1:4 either way, in reading order', async () => {
    const { c, tape } = await chain(200);
    const dot = (await c.get(`/tapes/${tape}?format=dot`).expect(200)).text;
    expect(dot).toContain('rankdir=TB;');
    const svg = (await c.get(`/tapes/${tape}?format=svg`).buffer(true).parse(text).expect(200)).body as string;
    const s = svgSize(svg);
    expect(s.width / s.height).toBeGreaterThanOrEqual(1 / 4);
    expect(s.width / s.height).toBeLessThanOrEqual(4);
    // Legible when fitted to a notebook cell of about 1000 pixels: not much wider than that.
    expect(s.width).toBeLessThan(1600);
    // x (the variable) is on the first row and y on the last.
    const yOf = (t: string) => Number(new RegExp(`<text[^>]* y="([\\d.-]+)"[^>]*>${t}</text>`).exec(svg)![1]);
    expect(yOf('x')).toBeLessThan(yOf('y') - s.height / 2);
    const png = pngSize((await c.get(`/tapes/${tape}?format=png`).buffer(true).parse(binary).expect(200)).body);
    expect(png.width / png.height).toBeGreaterThanOrEqual(1 / 4);
    expect(png.width / png.height).toBeLessThanOrEqual(4);
  });

  it('a short chain and the chapter\'s graph stay in one left-to-right strip, as before', async () => {
    for (const { c, tape } of [await chain(5), await chapter()]) {
      const dot = (await c.get(`/tapes/${tape}?format=dot`).expect(200)).text;
      expect(dot).toContain('rankdir=LR;');
      expect(dot).not.toContain('rank=same');
    }
  });
});
