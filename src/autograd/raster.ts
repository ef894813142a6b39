/** SVG to PNG with resvg compiled to WebAssembly, for viewers that cannot show SVG. */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

const require = createRequire(import.meta.url);

// The WebAssembly renderer sees no system fonts: it is given one, shipped as an npm package.
// DejaVu Sans Condensed is about as wide as the Helvetica that Graphviz measured the labels in,
// so text fits the boxes drawn around it.
const FONT_FAMILY = 'DejaVu Sans Condensed';
const FONT_FILE = 'dejavu-fonts-ttf/ttf/DejaVuSansCondensed.ttf';
// The longer side of a picture, in pixels, beyond which it is scaled down: a pixmap costs four
// bytes a pixel, and the largest drawable tapes would otherwise take hundreds of megabytes.
const MAX_SIDE = 8192;

// Rasterising the largest drawable tape takes seconds, so it runs on a thread of its own and the
// event loop keeps serving. The thread's code is a CommonJS script given as text: it then runs the
// same from the TypeScript sources (tests) and from the compiled build, with no file to ship.
const WORKER = `
const { parentPort, workerData: w } = require('node:worker_threads');
const { readFileSync } = require('node:fs');
const { Resvg, initWasm } = require(w.module);
const ready = initWasm(readFileSync(w.wasm));
const options = {
  background: 'white',
  font: { fontBuffers: [new Uint8Array(readFileSync(w.font))], defaultFontFamily: w.family, sansSerifFamily: w.family },
};
function render(svg) {
  let r = new Resvg(svg, options);
  const side = Math.max(r.width, r.height);
  if (side > w.maxSide) {
    r.free();
    r = new Resvg(svg, { ...options, fitTo: { mode: 'zoom', value: w.maxSide / side } });
  }
  try {
    const image = r.render();
    const png = image.asPng();
    image.free();
    return png;
  } finally {
    r.free();
  }
}
parentPort.on('message', async ({ id, svg }) => {
  try {
    await ready;
    const png = render(svg);
    parentPort.postMessage({ id, png }, [png.buffer]);
  } catch (e) {
    parentPort.postMessage({ id, error: String((e && e.message) || e) });
  }
});
`;

type Reply = { id: number; png?: Uint8Array; error?: string };
const pending = new Map<number, { resolve(png: Uint8Array): void; reject(e: Error): void }>();
let worker: Worker | null = null;
let nextId = 0;

function start(): Worker {
  const w = new Worker(WORKER, {
    eval: true,
    workerData: {
      module: require.resolve('@resvg/resvg-wasm'),
      wasm: require.resolve('@resvg/resvg-wasm/index_bg.wasm'),
      font: require.resolve(FONT_FILE),
      family: FONT_FAMILY,
      maxSide: MAX_SIDE,
    },
  });
  w.on('message', (m: Reply) => {
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (pending.size === 0) w.unref();
    if (m.png) p?.resolve(m.png);
    else p?.reject(new Error(`PNG rendering failed: ${m.error}`));
  });
  // A thread that dies fails what it was asked, and the next request starts a new one.
  const fail = (e: Error) => {
    if (worker === w) worker = null;
    for (const p of pending.values()) p.reject(e);
    pending.clear();
  };
  w.on('error', fail);
  w.on('exit', (code) => fail(new Error(`the PNG renderer stopped (exit code ${code})`)));
  return w;
}

/**
 * The SVG as a PNG at 96 pixels per inch on white (the SVG's points are 4/3 pixel each), its
 * longer side at most MAX_SIDE. The renderer starts on first use and is kept for the process's
 * life; while idle it does not keep the process alive.
 */
export function svgToPng(svg: string): Promise<Uint8Array> {
  worker ??= start();
  const w = worker;
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    w.ref();
    w.postMessage({ id, svg });
  });
}
