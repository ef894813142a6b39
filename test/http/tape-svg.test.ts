/** Tapes drawn: DOT (ops as ellipses, arrays as boxes, variables highlighted) and SVG via Graphviz (WASM). */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, Client, type TestServer } from '../helpers/server.js';
import { chapterTape } from '../helpers/tapes.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer(); });
afterAll(async () => { await srv.close(); });

const chapter = () => chapterTape(srv.url);

describe('GET /tapes/{tid}', () => {
  it('array descriptors name the tape that recorded them, until backward frees the history', async () => {
    const { c, tape } = await chapter();
    expect(tape).toMatch(/^t\d+$/);
    expect((await c.get('/arrays/y').expect(200)).body.tape).toBe(tape);
    expect((await c.get('/arrays').expect(200)).body.arrays.find((d: { name: string }) => d.name === 'y').tape).toBe(tape);
    // x is a variable (a leaf), not recorded: no tape.
    expect((await c.get('/arrays/x').expect(200)).body).not.toHaveProperty('tape');
    await c.post('/arrays/y/backward', {}).expect(200);
    expect((await c.get('/arrays/y').expect(200)).body).not.toHaveProperty('tape');
  });

  it('?labels names arrays in drawings as the client calls them; JSON keeps the real names; bad labels are 400', async () => {
    const { c, tape } = await chapter();
    const labels = encodeURIComponent(JSON.stringify({ x: 'weights_q', y: 'result_q' }));
    const dot = (await c.get(`/tapes/${tape}?format=dot&labels=${labels}`).expect(200)).text;
    expect(dot).toMatch(/label="weights_q\\n/);
    expect(dot).toMatch(/label="result_q\\n/);
    const json = (await c.get(`/tapes/${tape}?labels=${labels}`).expect(200)).body;
    expect(JSON.stringify(json)).not.toContain('_q');
    for (const bad of ['[1]', '{"x": 3}', '{"x": ""}', 'nope']) {
      const r = await c.get(`/tapes/${tape}?format=svg&labels=${encodeURIComponent(bad)}`);
      expect(r.status, bad).toBe(400);
      expect(r.body.arg).toBe('labels');
    }
  });

  it('?format=dot: ops as ellipses, arrays as boxes with name, shape and dtype, the variable highlighted', async () => {
    const { c, tape } = await chapter();
    const r = await c.get(`/tapes/${tape}?format=dot`).expect(200);
    expect(r.headers['content-type']).toMatch(/^text\/vnd\.graphviz/);
    const dot = r.text;
    for (const op of ['transpose', 'dot', 'multiply']) expect(dot).toMatch(new RegExp(`n\\d+ \\[shape=ellipse, [^\\n]*label="${op}"`));
    expect(dot).toMatch(/a\d+ \[shape=box, label="x\\n\[4, 1\] float32\\nvariable, grad_req=write", style="filled,bold"/);
    expect(dot).toMatch(/a\d+ \[shape=box, label="y\\n\[1, 1\] float32"/);
    expect(dot).toMatch(/s\d+_0 \[shape=plaintext, label="2"\]/);
  });

  it('?format=svg: an SVG picture with the op and array names', async () => {
    const { c, tape } = await chapter();
    const r = await c.get(`/tapes/${tape}?format=svg`).buffer(true).parse((res, cb) => {
      let s = '';
      res.on('data', (d: Buffer) => (s += d));
      res.on('end', () => cb(null, s));
    }).expect(200);
    expect(r.headers['content-type']).toMatch(/^image\/svg\+xml/);
    const svg = r.body as string;
    expect(svg).toMatch(/^<\?xml[^>]*\?>\s*<!DOCTYPE svg[\s\S]*<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"[\s\S]*<\/svg>\s*$/);
    for (const text of ['transpose', 'dot', 'multiply', 'x', 'y', '[4, 1] float32', 'variable, grad_req=write']) {
      expect(svg).toContain(`>${text}</text>`);
    }
    // Well-formed XML, as a strict parser reads it.
    const py = spawnSync('python3', ['-c', 'import sys, xml.etree.ElementTree as E; r = E.fromstring(sys.stdin.buffer.read()); print(r.tag)'], { input: svg });
    if (py.status === 0) expect(py.stdout.toString().trim()).toBe('{http://www.w3.org/2000/svg}svg');
  });

  it('unknown tapes are 404 in every format, and a bad format is 400', async () => {
    const { c } = await chapter();
    for (const f of ['json', 'dot', 'svg', 'png']) expect((await c.get(`/tapes/t999?format=${f}`).expect(404)).body.code).toBe('not_found');
    expect((await c.get('/tapes/t1?format=gif').expect(400)).body.code).toBe('invalid_request');
  });
});
