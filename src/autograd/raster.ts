/** SVG to PNG with resvg compiled to WebAssembly, for viewers that cannot show SVG. */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

type Resvg = typeof import('@resvg/resvg-wasm').Resvg;

const require = createRequire(import.meta.url);
// The WebAssembly renderer sees no system fonts: it is given one, shipped as an npm package.
// DejaVu Sans Condensed is about as wide as the Helvetica that Graphviz measured the labels in,
// so text fits the boxes drawn around it.
const FONT_FAMILY = 'DejaVu Sans Condensed';
const FONT_FILE = 'dejavu-fonts-ttf/ttf/DejaVuSansCondensed.ttf';
// The longer side of a picture, in pixels, beyond which it is scaled down: a pixmap costs four
// bytes a pixel, and the largest drawable tapes would otherwise take hundreds of megabytes.
const MAX_SIDE = 8192;

let loaded: Promise<{ Resvg: Resvg; font: Uint8Array }> | null = null;

async function load() {
  const m = await import('@resvg/resvg-wasm');
  const [wasm, font] = await Promise.all([
    readFile(require.resolve('@resvg/resvg-wasm/index_bg.wasm')),
    readFile(require.resolve(FONT_FILE)),
  ]);
  await m.initWasm(wasm);
  return { Resvg: m.Resvg, font: new Uint8Array(font) };
}

/**
 * The SVG as a PNG at 96 pixels per inch on white (the SVG's points are 4/3 pixel each). Loaded
 * on first use and kept for the life of the process, as Graphviz is.
 */
export async function svgToPng(svg: string): Promise<Uint8Array> {
  loaded ??= load();
  const { Resvg, font } = await loaded;
  const options = {
    background: 'white',
    font: { fontBuffers: [font], defaultFontFamily: FONT_FAMILY, sansSerifFamily: FONT_FAMILY },
  };
  let r = new Resvg(svg, options);
  const side = Math.max(r.width, r.height);
  if (side > MAX_SIDE) {
    r.free();
    r = new Resvg(svg, { ...options, fitTo: { mode: 'zoom', value: MAX_SIDE / side } });
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
