/**
 * The book's Fashion-MNIST classifiers, trained through gradserve's public HTTP API only:
 * (a) softmax regression from scratch (batch 256, lr 0.1, 5 epochs) and (b) the MLP with one hidden
 * layer of 256 ReLU units (batch 256, lr 0.5, 10 epochs). One request per training step.
 *
 *   npx tsx examples/fashion_mnist.ts [softmax|mlp|both] [--url http://127.0.0.1:8080]
 *     [--train N] [--epochs E]
 *
 * The data come from the Debian package dataset-fashion-mnist (gzipped IDX files); they are
 * uploaded once, as little-endian float32 in base64, in chunks that fit the body limit.
 */
import { readFileSync, existsSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';

export const DATA_DIR = '/usr/share/datasets/fashion-mnist';
const BATCH = 256;
/** Images per uploaded array: 40 batches, 32 MB of float32, well under the 64 MiB body limit. */
const CHUNK = BATCH * 40;

export interface Split { images: Float32Array; labels: Float32Array; n: number }

/** Reads an IDX file pair: pixels scaled to [0, 1] (as ToTensor does), labels as floats. */
function readIdx(dir: string, prefix: string, limit: number): Split {
  const img = gunzipSync(readFileSync(join(dir, `${prefix}-images-idx3-ubyte.gz`)));
  const lab = gunzipSync(readFileSync(join(dir, `${prefix}-labels-idx1-ubyte.gz`)));
  if (img.readUInt32BE(0) !== 2051 || lab.readUInt32BE(0) !== 2049) throw new Error(`${prefix}: not IDX image/label files`);
  const n = Math.min(img.readUInt32BE(4), limit);
  const px = img.readUInt32BE(8) * img.readUInt32BE(12);
  const images = new Float32Array(n * px);
  for (let i = 0; i < n * px; i++) images[i] = img[16 + i] / 255;
  const labels = new Float32Array(n);
  for (let i = 0; i < n; i++) labels[i] = lab[8 + i];
  return { images, labels, n };
}

export function loadFashionMnist(dir = DATA_DIR, trainLimit = Infinity, testLimit = Infinity): { train: Split; test: Split } | null {
  if (!existsSync(join(dir, 'train-images-idx3-ubyte.gz'))) return null;
  return { train: shuffled(readIdx(dir, 'train', trainLimit), 42), test: readIdx(dir, 't10k', testLimit) };
}

/** A seeded permutation of the examples, so that batches are mixed across classes. */
function shuffled(s: Split, seed: number): Split {
  const px = s.images.length / s.n;
  const order = [...Array(s.n).keys()];
  let x = seed;
  for (let i = s.n - 1; i > 0; i--) {
    x = (x * 1103515245 + 12345) >>> 0;
    const j = x % (i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const images = new Float32Array(s.images.length);
  const labels = new Float32Array(s.n);
  order.forEach((from, to) => {
    images.set(s.images.subarray(from * px, (from + 1) * px), to * px);
    labels[to] = s.labels[from];
  });
  return { images, labels, n: s.n };
}

/** fetch, waiting and sending again while a busy server answers 503 or 429 with Retry-After. */
async function send(url: string, method: string, headers: Record<string, string>, payload?: string): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
    const r = await fetch(url, { method, headers: { ...headers, ...(payload === undefined ? {} : { 'content-type': 'application/json' }) }, body: payload });
    if ((r.status !== 503 && r.status !== 429) || attempt >= 20) return r;
    await r.text();
    await new Promise((ok) => setTimeout(ok, 1000 * Number(r.headers.get('retry-after') ?? 1)));
  }
}

/** A session of a gradserve server, through fetch only. */
export class Remote {
  private constructor(readonly url: string, readonly sid: string, readonly token: string) {}

  static async open(url: string): Promise<Remote> {
    const r = await send(`${url}/v1/sessions`, 'POST', {}, JSON.stringify({ seed: 1, ttl_seconds: 24 * 3600 }));
    if (r.status !== 201) throw new Error(`POST /v1/sessions -> ${r.status} ${await r.text()}`);
    const b = await r.json() as { id: string; token: string };
    return new Remote(url, b.id, b.token);
  }

  async call(method: string, path: string, body?: unknown): Promise<any> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const r = await send(`${this.url}/v1/sessions/${this.sid}${path}`, method, { authorization: `Bearer ${this.token}` }, payload);
    const text = await r.text();
    if (r.status >= 300) throw new Error(`${method} ${path} -> ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  upload(name: string, data: Float32Array, shape: number[]): Promise<unknown> {
    const b64 = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
    return this.call('POST', '/arrays', { name, data_base64: b64, shape, dtype: 'float32' });
  }

  expr(expr: string): Promise<any> {
    return this.call('POST', '/ops', { expr });
  }

  close(): Promise<unknown> {
    return this.call('DELETE', '');
  }
}

interface Chunk { name: string; n: number }

/** Uploads a split as X{k}/Y{k} chunks of CHUNK images. */
async function uploadSplit(r: Remote, s: Split, tag: string): Promise<Chunk[]> {
  const px = s.images.length / s.n;
  const chunks: Chunk[] = [];
  for (let at = 0, k = 0; at < s.n; at += CHUNK, k++) {
    const n = Math.min(CHUNK, s.n - at);
    await r.upload(`${tag}X${k}`, s.images.subarray(at * px, (at + n) * px), [n, px]);
    await r.upload(`${tag}Y${k}`, s.labels.subarray(at, at + n), [n]);
    chunks.push({ name: `${k}`, n });
  }
  return chunks;
}

export interface Model {
  name: string;
  /** Parameter creation (an expression run once). */
  init: string;
  params: string[];
  /** The logits of the images in `X`, as an expression. */
  net: (X: string) => string;
  lr: number;
  epochs: number;
  /** 'assign': W[:] = W - lr/n * W.grad, as the book's sgd; 'sgd_update': the optimizer op. */
  update: 'assign' | 'sgd_update';
}

export const SOFTMAX: Model = {
  name: 'softmax regression',
  init: 'W = nd.random.normal(scale=0.01, shape=(784, 10)); b = nd.zeros(10)',
  params: ['W', 'b'],
  net: (X) => `nd.dot(${X}, W) + b`,
  lr: 0.1,
  epochs: 5,
  update: 'assign',
};

export const MLP: Model = {
  name: 'MLP (256 hidden ReLU units)',
  init: 'W1 = nd.random.normal(scale=0.01, shape=(784, 256)); b1 = nd.zeros(256); W2 = nd.random.normal(scale=0.01, shape=(256, 10)); b2 = nd.zeros(10)',
  params: ['W1', 'b1', 'W2', 'b2'],
  net: (X) => `nd.dot(nd.relu(nd.dot(${X}, W1) + b1), W2) + b2`,
  lr: 0.5,
  epochs: 10,
  update: 'sgd_update',
};

/** One training step: forward and summed loss under record, backward, in-place updates. */
function stepExpr(m: Model, chunk: string, a: number, b: number): string {
  const n = b - a;
  const updates = m.params.map((p) => (m.update === 'assign'
    ? `${p}[:] = ${p} - ${m.lr} / ${n} * ${p}.grad`
    : `sgd_update(${p}, ${p}.grad, lr=${m.lr}, rescale_grad=${1 / n}, out=${p})`));
  return [
    `Xb = X${chunk}[${a}:${b}]; Yb = Y${chunk}[${a}:${b}]`,
    'with autograd.record():',
    `    o = ${m.net('Xb')}`,
    '    l = -nd.pick(nd.log_softmax(o), Yb).sum()',
    'l.backward()',
    ...updates,
    // loss and number of correct predictions, in one answer
    'nd.concat(l, (o.argmax(axis=1) == Yb).sum(), dim=0)',
  ].join('\n');
}

export interface EpochReport { epoch: number; loss: number; trainAcc: number; testAcc: number; seconds: number }

export async function train(url: string, m: Model, data: { train: Split; test: Split }, opts: { epochs?: number; log?: (s: string) => void } = {}): Promise<EpochReport[]> {
  const log = opts.log ?? console.log;
  const r = await Remote.open(url);
  try {
    const t0 = Date.now();
    let trainChunks = await uploadSplit(r, data.train, '');
    const testChunks = await uploadSplit(r, data.test, 't');
    log(`${m.name}: uploaded ${data.train.n} train and ${data.test.n} test images in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await r.expr(m.init);
    for (const p of m.params) await r.call('POST', `/arrays/${p}/attach-grad`, {});
    const reports: EpochReport[] = [];
    const epochs = opts.epochs ?? m.epochs;
    let rng = 7;
    for (let epoch = 1; epoch <= epochs; epoch++) {
      const start = Date.now();
      let loss = 0;
      let correct = 0;
      // Random minibatches each epoch, as the book's data_iter: the examples are shuffled again and
      // uploaded over the previous epoch's arrays (rebinding the names frees the old buffers).
      if (epoch > 1) trainChunks = await uploadSplit(r, shuffled(data.train, 42 + epoch), '');
      // The batch order is shuffled too, so no chunk always comes first.
      const batches = trainChunks.flatMap((c) => [...Array(Math.ceil(c.n / BATCH)).keys()].map((i) => ({ c: c.name, a: i * BATCH, b: Math.min((i + 1) * BATCH, c.n) })));
      for (let i = batches.length - 1; i > 0; i--) {
        rng = (rng * 1103515245 + 12345) >>> 0;
        const j = rng % (i + 1);
        [batches[i], batches[j]] = [batches[j], batches[i]];
      }
      for (const bt of batches) {
        const res = await r.expr(stepExpr(m, bt.c, bt.a, bt.b));
        const [l, ok] = res.result.data as number[];
        loss += l;
        correct += ok;
      }
      let testOk = 0;
      for (const c of testChunks) {
        const res = await r.expr(`(nd.argmax(${m.net(`tX${c.name}`)}, axis=1) == tY${c.name}).sum().asscalar()`);
        testOk += res.result as number;
      }
      const rep = { epoch, loss: loss / data.train.n, trainAcc: correct / data.train.n, testAcc: testOk / data.test.n, seconds: (Date.now() - start) / 1000 };
      reports.push(rep);
      log(`epoch ${epoch}, loss ${rep.loss.toFixed(4)}, train acc ${rep.trainAcc.toFixed(3)}, test acc ${rep.testAcc.toFixed(3)} (${rep.seconds.toFixed(1)} s)`);
    }
    return reports;
  } finally {
    await r.close().catch(() => undefined);
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (k: string) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : undefined; };
  const which = args.find((a) => !a.startsWith('--') && !args[args.indexOf(a) - 1]?.startsWith('--')) ?? 'both';
  const url = opt('--url') ?? process.env.GRADSERVE_URL ?? 'http://127.0.0.1:8080';
  const data = loadFashionMnist(DATA_DIR, Number(opt('--train') ?? Infinity));
  if (!data) throw new Error(`no Fashion-MNIST under ${DATA_DIR}: apt-get install dataset-fashion-mnist`);
  const epochs = opt('--epochs') ? Number(opt('--epochs')) : undefined;
  if (which === 'softmax' || which === 'both') await train(url, SOFTMAX, data, { epochs });
  if (which === 'mlp' || which === 'both') await train(url, MLP, data, { epochs });
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  main().catch((e) => { console.error(e); process.exit(1); });
}
