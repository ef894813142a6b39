/**
 * Sessions that outlive their process (GRADSERVE_STATE_DIR, issue 19): every request that ran
 * against a session is journaled, in the order the session ran it, and its answer waits until the
 * record is on disk; at start the journal is replayed through the same routes, so that everything a
 * client can observe (arrays, gradients, tapes with their saved values, scopes, definitions,
 * snapshots, the random stream, idempotency records) comes back as it was when last acknowledged.
 *
 * Replay relies on the engine being deterministic for a given session seed, which the tests check
 * bit for bit. A request that stopped on its time budget may stop elsewhere when replayed.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Journal, type Recovered } from '../../durability/journal.js';
import { Lease } from '../../durability/lease.js';
import type { Session } from '../../session/session.js';
import type { SessionStore } from '../../session/store.js';
import { captureState, restoreSnapshot, type Snapshot } from '../../session/snapshots.js';
import { Deferred } from '../../session/deferred.js';
import type { GradReq } from '../../program/format.js';
import type { JournalRecord } from '../../durability/journal.js';
import { uploadsOf } from '../multipart.js';
import { REPLAY_HEADER, REPLAY_SECRET, isReplay } from '../replay.js';

const DURABLE = Symbol('durable');
type Tagged = FastifyRequest & { [DURABLE]?: Promise<void> };

/** Headers a replay needs to read the body as the original request was read. */
const KEPT_HEADERS = ['content-type', 'idempotency-key', 'inference-header-content-length'];

export interface Durability {
  /** A session POST /v1/sessions made: journaled before the answer goes. */
  created(req: FastifyRequest, s: Session): void;
  /** A session forked from `from`'s snapshot `snapshot`: journaled inside `from`'s queue. */
  forked(req: FastifyRequest, from: Session, snapshot: string, s: Session): void;
  readonly journal: Journal;
}

function sessionHeader(s: Session): Record<string, unknown> {
  return { id: s.id, token_hash: s.tokenHash.toString('base64url'), ttl: s.ttlMs / 1000, seed: s.seed, dtype: s.defaultDtype, api_key: s.apiKey };
}

/** The body as the route read it: its bytes, a multipart form rebuilt from its parts, or JSON. */
function bodyOf(req: FastifyRequest): { contentType?: string; body: Uint8Array | null } {
  const b = req.body as unknown;
  if (Buffer.isBuffer(b)) return { body: b };
  const parts = uploadsOf(req);
  if (parts.size) {
    const boundary = `gradserve-journal-${randomBytes(16).toString('hex')}`;
    const pieces: Buffer[] = [];
    const part = (name: string, type: string, data: Uint8Array) => {
      pieces.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"${name === 'program' ? '' : `; filename="${name}"`}\r\nContent-Type: ${type}\r\n\r\n`), Buffer.from(data), Buffer.from('\r\n'));
    };
    part('program', 'application/json', Buffer.from(JSON.stringify(b ?? {})));
    for (const [name, data] of parts) part(name, 'application/octet-stream', data);
    pieces.push(Buffer.from(`--${boundary}--\r\n`));
    return { contentType: `multipart/form-data; boundary=${boundary}`, body: Buffer.concat(pieces) };
  }
  if (b === undefined) return { body: null };
  return { contentType: 'application/json', body: Buffer.from(JSON.stringify(b)) };
}

/** Nothing a checkpoint cannot hold: no scope open across requests, no live tape node, no snapshot. */
function quiet(s: Session): boolean {
  if (s.scopes.stack.length > 0 || s.snapshots.size > 0) return false;
  for (const t of s.tapes.values()) if (t.nodes.some((n) => !n.freed)) return false;
  return true;
}

/** A quiet session as one record: its arrays as safetensors and what a file cannot say. Run inside `s.run`. */
function checkpointOf(s: Session): Deferred<Promise<JournalRecord>> {
  const { gradReqs, definitions, random, file } = captureState(s);
  const header = { t: 'checkpoint', ...sessionHeader(s), grad_reqs: Object.fromEntries(gradReqs), random, definitions: definitions.map((d) => d.source) };
  return new Deferred(async () => ({ header, body: Buffer.concat(await file.read()) }));
}

/** The session a record belongs to. */
const ownerOf = (h: Record<string, unknown>) => (h.t === 'req' || h.t === 'end' ? h.sid : h.id) as string;

/** Opens the journal and hooks it in; call before the app is ready, then `replay` once it is. */
export async function registerDurability(app: FastifyInstance, store: SessionStore, dir: string, sync = true, checkpointBytes = 64 << 20, leaseMs = 10000): Promise<{ durability: Durability; recovered: Recovered; replay(): Promise<number>; compact(): Promise<{ before: number; after: number; checkpoints: number }> }> {
  mkdirSync(dir, { recursive: true });
  let warned = 0;
  const lease = await Lease.acquire(dir, {
    termMs: leaseMs,
    waiting: (held) => {
      if (Date.now() - warned < 10000) return;
      warned = Date.now();
      app.log.warn({ state_dir: dir, holder: held.owner, epoch: held.epoch }, 'the state directory is held by another process: waiting for its lease to lapse');
    },
    lost: (now) => {
      // Fenced: another process serves these sessions now. Nothing more may be written or answered.
      app.log.fatal({ state_dir: dir, holder: now?.owner ?? null, epoch: now?.epoch ?? null }, 'the state directory lease was taken by another process: stopping at once');
      process.exit(75);
    },
  });
  app.log.info({ state_dir: dir, epoch: lease.epoch }, 'holding the state directory lease');
  const { journal, recovered } = await Journal.open(dir, sync);
  let live = false;
  /** Journal bytes each session has added since its last checkpoint. */
  const sinceCheckpoint = new Map<string, number>();
  /** Sessions a fork was made from: a replay of the fork needs their records, never checkpointed away. */
  const forkSources = new Set<string>();
  for (const { header: h } of recovered.records) if (h.t === 'fork') forkSources.add(h.from as string);
  const hold = (req: FastifyRequest, p: Promise<void>) => { (req as Tagged)[DURABLE] = p; };

  store.onRan = (tag) => {
    const req = tag as FastifyRequest;
    if (!live || isReplay(req)) return;
    const sid = (req.params as { sid?: string }).sid;
    const { contentType, body } = bodyOf(req);
    const headers: Record<string, string> = {};
    for (const h of KEPT_HEADERS) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    if (contentType) headers['content-type'] = contentType;
    hold(req, journal.append({ t: 'req', sid, method: req.method, url: req.url, headers }, body));
    const s = sid ? store.get(sid) : undefined;
    if (!s) return;
    const since = (sinceCheckpoint.get(s.id) ?? 0) + 256 + (body?.byteLength ?? 0);
    sinceCheckpoint.set(s.id, since);
    if (since < checkpointBytes || forkSources.has(s.id)) return;
    // A checkpoint supersedes the session's records before it, so a replay skips them. It runs
    // next in the session's queue, where nothing else can change the session meanwhile.
    sinceCheckpoint.set(s.id, 0);
    const pendingTag = s.runTag;
    s.runTag = undefined;
    void s.run(() => (quiet(s) ? new Deferred(async () => {
      const rec = await checkpointOf(s).read();
      await journal.append(rec.header, rec.body);
    }) : undefined)).catch(() => undefined);
    s.runTag = pendingTag;
  };
  store.onDeleted((id) => {
    // An expiry or a delete: the session must not come back. Not awaited: nothing answers for it.
    if (live) void journal.append({ t: 'end', sid: id }).catch(() => undefined);
  });
  app.addHook('onSend', async (req, _reply, payload) => {
    const p = (req as Tagged)[DURABLE];
    if (p) await p;
    return payload;
  });
  app.addHook('onClose', async () => {
    await journal.close();
    lease.release();
  });

  const durability: Durability = {
    journal,
    created(req, s) {
      if (live && !isReplay(req)) hold(req, journal.append({ t: 'create', ...sessionHeader(s) }));
    },
    forked(req, from, snapshot, s) {
      forkSources.add(from.id);
      if (live && !isReplay(req)) hold(req, journal.append({ t: 'fork', from: from.id, snapshot, ...sessionHeader(s) }));
    },
  };

  /** Where each session's last checkpoint is: its records before it are superseded. */
  const lastCheckpoint = new Map<string, number>();
  recovered.records.forEach(({ header: h }, i) => { if (h.t === 'checkpoint') lastCheckpoint.set(h.id as string, i); });
  const superseded = (h: Record<string, unknown>, i: number) => i < (lastCheckpoint.get(ownerOf(h)) ?? -1);

  const replay = async (): Promise<number> => {
    let n = 0;
    for (const [i, { header: h, body }] of recovered.records.entries()) {
      if (superseded(h, i)) continue;
      const make = () => store.create({
        id: h.id as string, tokenHash: Buffer.from(h.token_hash as string, 'base64url'), ttl_seconds: h.ttl as number,
        seed: h.seed as number, default_dtype: h.dtype as 'float32', apiKey: (h.api_key as string | null) ?? null,
      }).session;
      switch (h.t) {
        case 'create':
          make();
          break;
        case 'fork': {
          const snap = store.get(h.from as string)?.snapshots.get(h.snapshot as string);
          if (!snap) break;
          const s = make();
          await s.run(() => restoreSnapshot(s, snap));
          break;
        }
        case 'req':
          await app.inject({
            method: h.method as 'POST',
            url: h.url as string,
            headers: { ...(h.headers as Record<string, string>), [REPLAY_HEADER]: REPLAY_SECRET },
            ...(body ? { payload: Buffer.from(body.buffer, body.byteOffset, body.byteLength) } : {}),
          });
          break;
        case 'end': {
          const s = store.get(h.sid as string);
          if (s) store.delete(s);
          break;
        }
        case 'checkpoint': {
          const s = make();
          const state: Snapshot = {
            name: '', createdAt: new Date(), file: body ?? new Uint8Array(0), arrays: 0, definitions: [],
            gradReqs: new Map(Object.entries(h.grad_reqs as Record<string, { req: GradReq; fresh: boolean }>)),
            random: h.random as { seed: number; counter: number },
          };
          await s.run(() => restoreSnapshot(s, state));
          // Definitions are kept as their source and defined again, in their order.
          for (const source of h.definitions as string[]) {
            await app.inject({ method: 'POST', url: `/v1/sessions/${s.id}/ops`, headers: { 'content-type': 'application/json', [REPLAY_HEADER]: REPLAY_SECRET }, payload: JSON.stringify({ expr: source }) });
          }
          break;
        }
        default:
          break;
      }
      n++;
    }
    live = true;
    return n;
  };
  /**
   * At start, after the replay: each session with nothing a file cannot hold (no scope open, no
   * live tape node, no snapshot) is written as one checkpoint record; the others keep their
   * records; ended sessions go. The journal then replays in one record per quiet session.
   */
  const compact = async () => {
    const checkpoints: JournalRecord[] = [];
    const kept = new Set<string>();
    for (const s of store.all()) {
      if (!quiet(s) || forkSources.has(s.id)) {
        kept.add(s.id);
        continue;
      }
      checkpoints.push((await s.run(() => checkpointOf(s))) as unknown as JournalRecord);
    }
    // A kept session forked from another needs that one's records too, for its snapshot.
    for (let grew = true; grew;) {
      grew = false;
      for (const { header: h } of recovered.records) {
        if (h.t === 'fork' && kept.has(h.id as string) && !kept.has(h.from as string)) {
          kept.add(h.from as string);
          grew = true;
        }
      }
    }
    const tail = recovered.records.filter((r, i) => kept.has(ownerOf(r.header)) && !superseded(r.header, i));
    const sizes = await journal.replaceWith([...checkpoints, ...tail]);
    return { ...sizes, checkpoints: checkpoints.length };
  };

  return { durability, recovered, replay, compact };
}
