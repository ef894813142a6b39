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
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Journal, readRecords, type Recovered } from '../../durability/journal.js';
import { Claims } from '../../durability/claims.js';
import { Lease } from '../../durability/lease.js';
import type { Session } from '../../session/session.js';
import type { SessionStore } from '../../session/store.js';
import { captureState, restoreSnapshot, type Snapshot } from '../../session/snapshots.js';
import { fail } from '../../errors.js';
import { SEEN_SESSION, bearer } from '../auth.js';
import { problemAnswer } from '../problem.js';
import { hashToken } from '../../session/store.js';
import { Deferred } from '../../session/deferred.js';
import type { GradReq } from '../../program/format.js';
import type { JournalRecord } from '../../durability/journal.js';
import { uploadsOf } from '../multipart.js';
import type { IdempotencyRecords, KeptAnswer } from './idempotency.js';
import { REPLAY_HEADER, REPLAY_SECRET, isReplay } from '../replay.js';

const DURABLE = Symbol('durable');
/** The session of a request with an Idempotency-Key that ran (for the checkpoint's timing). */
const KEYED = Symbol('keyed');
type Tagged = FastifyRequest & { [DURABLE]?: Promise<void>; [SEEN_SESSION]?: Session; [KEYED]?: string };

/** Headers a replay needs to read the body as the original request was read. */
const KEPT_HEADERS = ['content-type', 'idempotency-key', 'inference-header-content-length'];

export interface Durability {
  /** A session POST /v1/sessions made: journaled before the answer goes. */
  created(req: FastifyRequest, s: Session): void;
  /** A session forked from snapshot `snap`: journaled as a checkpoint of its own, inside the source's queue. */
  forked(req: FastifyRequest, snap: Snapshot, s: Session): void;
  readonly journal: Journal;
  /** The Idempotency-Key records, so that a checkpoint keeps a session's stored answers. */
  useIdempotency(records: IdempotencyRecords): void;
}

export interface DurabilityOptions {
  dir: string;
  sync?: boolean;
  checkpointBytes?: number;
  leaseMs?: number;
  /**
   * This replica's name, when replicas share `dir`: each keeps its own journal and lease under
   * `replicas/<name>/`, and sessions change hands through `sessions/<sid>/<epoch>` claims.
   */
  replica?: string;
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

/** The session a record belongs to. */
const ownerOf = (h: Record<string, unknown>) => (h.t === 'req' || h.t === 'end' ? h.sid : h.id) as string;
/** Records from which a session's state is rebuilt: everything of it before the last one is superseded. */
const STARTS = new Set(['create', 'checkpoint']);

/**
 * Where each session's state starts in `records` (its last create or checkpoint), when that start
 * is whole: records copied from another replica's journal (`copy` on their first) count only once
 * the `adopted` record after them says they are all there.
 */
function startsOf(records: JournalRecord[]): Map<string, number> {
  const last = new Map<string, number>();
  const committed = new Set<string>();
  records.forEach(({ header: h }, i) => {
    const sid = ownerOf(h);
    if (STARTS.has(h.t as string)) {
      last.set(sid, i);
      committed.delete(sid);
    } else if (h.t === 'adopted' && last.has(sid) && records[last.get(sid)!].header.epoch === h.epoch) committed.add(sid);
  });
  for (const [sid, i] of last) if (records[i].header.copy && !committed.has(sid)) last.set(sid, Infinity);
  return last;
}

/**
 * The records that rebuild `sid` and the tenure they belong to; null when the journal holds no
 * whole, live state of it.
 */
function chainOf(records: JournalRecord[], sid: string): { chain: JournalRecord[]; epoch: number } | 'ended' | null {
  const start = startsOf(records).get(sid);
  if (start === undefined || start === Infinity) return null;
  const chain = records.slice(start).filter(({ header: h }) => ownerOf(h) === sid && h.t !== 'adopted');
  if (chain.some(({ header: h }) => h.t === 'end')) return 'ended';
  return { chain, epoch: Number(records[start].header.epoch ?? 0) };
}

/** Opens the journal and hooks it in; call before the app is ready, then `replay` once it is. */
export async function registerDurability(app: FastifyInstance, store: SessionStore, o: DurabilityOptions): Promise<{ durability: Durability; recovered: Recovered; replay(): Promise<number>; compact(): Promise<{ before: number; after: number; checkpoints: number }>; shutdown(): Promise<void> }> {
  const { dir, sync = true, checkpointBytes = 64 << 20, leaseMs = 10000 } = o;
  const base = o.replica ? join(dir, 'replicas', o.replica) : dir;
  mkdirSync(base, { recursive: true });
  const claims = o.replica ? new Claims(join(dir, 'sessions'), o.replica) : null;
  /** The tenure (claim epoch) of each session this replica serves, when replicas share the directory. */
  const epochs = new Map<string, number>();
  const journalOf = (replica: string) => join(dir, 'replicas', replica, 'journal.log');

  let warned = 0;
  const lease = await Lease.acquire(base, {
    termMs: leaseMs,
    waiting: (held) => {
      if (Date.now() - warned < 10000) return;
      warned = Date.now();
      app.log.warn({ state_dir: base, holder: held.owner, epoch: held.epoch }, 'the state directory is held by another process: waiting for its lease to lapse');
    },
    lost: (now) => {
      // Fenced: another process serves these sessions now. Nothing more may be written or answered.
      app.log.fatal({ state_dir: base, holder: now?.owner ?? null, epoch: now?.epoch ?? null }, 'the state directory lease was taken by another process: stopping at once');
      process.exit(75);
    },
  });
  app.log.info({ state_dir: base, epoch: lease.epoch, replica: o.replica || null }, 'holding the state directory lease');
  const { journal, recovered } = await Journal.open(base, sync);
  let live = false;
  /** Journal bytes each session has added since its last checkpoint. */
  const sinceCheckpoint = new Map<string, number>();
  /** Sessions due a checkpoint, taken once none of their keyed requests awaits its answer. */
  const dueCheckpoint = new Set<string>();
  /** Requests with an Idempotency-Key that ran and are not answered yet, by session. */
  const keyedInFlight = new Map<string, number>();
  const hold = (req: FastifyRequest, p: Promise<void>) => { (req as Tagged)[DURABLE] = p; };
  let idempotency: IdempotencyRecords | null = null;
  const sessionHeader = (s: Session): Record<string, unknown> => ({
    id: s.id, token_hash: s.tokenHash.toString('base64url'), ttl: s.ttlMs / 1000, seed: s.seed, dtype: s.defaultDtype, api_key: s.apiKey, epoch: epochs.get(s.id) ?? 0,
  });
  /** The header of a checkpoint of `s` holding `state` (a snapshot's, or the session's own). */
  const checkpointHeader = (s: Session, state: Pick<Snapshot, 'gradReqs' | 'random' | 'definitions'>, answers: KeptAnswer[]) => ({
    t: 'checkpoint', ...sessionHeader(s), grad_reqs: Object.fromEntries(state.gradReqs), random: state.random, definitions: state.definitions.map((d) => d.source), answers,
  });
  /** A quiet session as one record: its arrays as safetensors and what a file cannot say. Run inside `s.run`. */
  const checkpointOf = (s: Session): Deferred<Promise<JournalRecord>> => {
    const state = captureState(s);
    const header = checkpointHeader(s, state, idempotency?.of(s.id) ?? []);
    return new Deferred(async () => ({ header, body: Buffer.concat(await state.file.read()) }));
  };
  /** Journals a checkpoint of `s`, next in its queue, if it is quiet then. */
  const writeCheckpoint = (s: Session): Promise<unknown> => s.run(() => (quiet(s) ? new Deferred(async () => {
    const rec = await checkpointOf(s).read();
    await journal.append(rec.header, rec.body);
  }) : undefined));
  /** A new session's first tenure, when replicas share the directory. */
  const claimNew = (s: Session) => {
    if (!claims) return;
    const epoch = claims.claim(s.id);
    if (epoch === null) {
      store.release(s);
      throw fail('session_moved', `session id \`${s.id}\` is already claimed in the shared state directory; send the request again for a new id`, { retry_after: 1 });
    }
    epochs.set(s.id, epoch);
  };

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
    if (sid && headers['idempotency-key']) {
      keyedInFlight.set(sid, (keyedInFlight.get(sid) ?? 0) + 1);
      (req as Tagged)[KEYED] = sid;
    }
    const s = sid ? store.get(sid) : undefined;
    if (!s) return;
    const since = (sinceCheckpoint.get(s.id) ?? 0) + 256 + (body?.byteLength ?? 0);
    sinceCheckpoint.set(s.id, since);
    if (since >= checkpointBytes) dueCheckpoint.add(s.id);
  };
  // A checkpoint supersedes the session's records before it, so it must hold the stored answer of
  // every keyed request among them: it is taken after an answer has gone, when no keyed request of
  // the session is still waiting for its own. It runs next in the session's queue.
  app.addHook('onResponse', async (req) => {
    const keyed = (req as Tagged)[KEYED];
    if (keyed) {
      const n = (keyedInFlight.get(keyed) ?? 1) - 1;
      if (n > 0) keyedInFlight.set(keyed, n);
      else keyedInFlight.delete(keyed);
    }
    const sid = (req.params as { sid?: unknown } | undefined)?.sid;
    if (typeof sid !== 'string' || !dueCheckpoint.has(sid) || keyedInFlight.has(sid)) return;
    dueCheckpoint.delete(sid);
    const s = store.get(sid);
    if (!s || fenced(sid)) return;
    sinceCheckpoint.set(sid, 0);
    const pendingTag = s.runTag;
    s.runTag = undefined;
    void writeCheckpoint(s).catch(() => undefined);
    s.runTag = pendingTag;
  });
  store.onDeleted((id) => {
    // An expiry or a delete: the session must not come back. Not awaited: nothing answers for it.
    const e = epochs.get(id);
    epochs.delete(id);
    sinceCheckpoint.delete(id);
    dueCheckpoint.delete(id);
    if (!live) return;
    // A copy another replica took over (this one never heard): its end is not this replica's.
    if (claims && e !== undefined && claims.superseded(id, e)) return;
    void journal.append({ t: 'end', sid: id }).then(() => { if (claims && e !== undefined) claims.end(id, e); }).catch(() => undefined);
  });

  /** Whether another replica has taken `sid` from this one since its tenure began. */
  const fenced = (sid: string) => {
    const e = epochs.get(sid);
    return claims !== null && e !== undefined && claims.superseded(sid, e);
  };
  /** Sessions let go of here: a request that found one answers that it moved. */
  const letGoOf = new WeakSet<Session>();
  /** Lets go of the session held as `sid`, if any: a request that found it answers that it moved. */
  const drop = (sid: string) => {
    epochs.delete(sid);
    sinceCheckpoint.delete(sid);
    dueCheckpoint.delete(sid);
    const s = store.get(sid);
    if (s) {
      letGoOf.add(s);
      store.release(s);
    }
  };
  const letGo = (sid: string) => {
    drop(sid);
    app.log.info({ session: sid }, 'another replica took this session over: let go of it here');
  };
  app.addHook('onSend', async (req, reply, payload) => {
    const p = (req as Tagged)[DURABLE];
    if (p) await p;
    // Given only while this replica's tenure lasts: a replica that took the session over read the
    // journal after its claim, so whatever is answered here before that claim is in what it read.
    const sid = (req.params as { sid?: unknown } | undefined)?.sid;
    if (typeof sid !== 'string' || isReplay(req) || !claims) return payload;
    // Or let go of (and perhaps taken back) while this request waited its turn.
    const seen = (req as Tagged)[SEEN_SESSION];
    if (fenced(sid) || (seen && letGoOf.has(seen))) {
      if (fenced(sid)) letGo(sid);
      return problemAnswer(reply, fail('session_moved', `another replica took session \`${sid}\` over before this answer was given, and may hold what this request did: send it again with the same Idempotency-Key to be answered once`, { retry_after: 1 }), req);
    }
    return payload;
  });
  /**
   * A graceful stop, once the requests in flight are done and before the sessions go: each quiet
   * session changed since its last checkpoint becomes one record, so the next start replays little.
   */
  const shutdown = async () => {
    for (const s of [...store.all()]) {
      if (!(sinceCheckpoint.get(s.id) ?? 0) || fenced(s.id)) continue;
      try {
        await writeCheckpoint(s);
      } catch (e) {
        app.log.warn({ session: s.id, err: (e as Error).message }, 'no checkpoint at shutdown: the next start replays its records');
      }
    }
    await journal.close();
    lease.release();
  };

  const durability: Durability = {
    journal,
    useIdempotency(records) { idempotency = records; },
    created(req, s) {
      if (!live || isReplay(req)) return;
      claimNew(s);
      hold(req, journal.append({ t: 'create', ...sessionHeader(s) }));
    },
    forked(req, snap, s) {
      if (!live || isReplay(req)) return;
      claimNew(s);
      hold(req, journal.append(checkpointHeader(s, snap, []), snap.file));
    },
  };

  /** Rebuilds a session from one record; the journal's order is the sessions' order. */
  const apply = async (h: Record<string, unknown>, body: Uint8Array | null, adopting = false): Promise<void> => {
    const make = () => {
      const s = store.create({
        id: h.id as string, tokenHash: Buffer.from(h.token_hash as string, 'base64url'), ttl_seconds: h.ttl as number,
        seed: h.seed as number, default_dtype: h.dtype as 'float32', apiKey: (h.api_key as string | null) ?? null,
      }).session;
      if (claims && !adopting) epochs.set(s.id, Number(h.epoch ?? 0));
      return s;
    };
    switch (h.t) {
      case 'create':
        make();
        break;
      case 'req': {
        const r = await app.inject({
          method: h.method as 'POST',
          url: h.url as string,
          headers: { ...(h.headers as Record<string, string>), [REPLAY_HEADER]: REPLAY_SECRET },
          ...(body ? { payload: Buffer.from(body.buffer, body.byteOffset, body.byteLength) } : {}),
        });
        // Refusals that depend on this process's other work, not on the session: a takeover that
        // met one would serve a session that differs from what was answered, so it stops here.
        const aside = r.statusCode === 503 || r.statusCode === 507 || (r.statusCode === 429 && /"limit":"total_/.test(r.body));
        if (adopting && aside) throw fail('unavailable', `this replica cannot rebuild the session now (a replayed request met ${r.statusCode}); send the request again`, { retry_after: 1 });
        break;
      }
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
        idempotency?.restore(s.id, (h.answers as KeptAnswer[] | undefined) ?? []);
        // Definitions are kept as their source and defined again, in their order.
        for (const source of h.definitions as string[]) {
          await app.inject({ method: 'POST', url: `/v1/sessions/${s.id}/ops`, headers: { 'content-type': 'application/json', [REPLAY_HEADER]: REPLAY_SECRET }, payload: JSON.stringify({ expr: source }) });
        }
        break;
      }
      default:
        // 'adopted' says that the copied records before it are whole.
        break;
    }
  };

  /** Where each session's last start is: its records before it are superseded. */
  // A session whose copied records were cut short by a crash has no start: it is not rebuilt, and
  // the next request for it takes it over again from where it was whole.
  const lastStart = startsOf(recovered.records);
  const superseded = (h: Record<string, unknown>, i: number) => i < (lastStart.get(ownerOf(h)) ?? -1);

  /** What tenure `t`'s journal holds of `sid`; undefined when that journal cannot be read. */
  const chainAt = (t: { owner: string }, sid: string) => {
    try {
      return chainOf(readRecords(readFileSync(journalOf(t.owner))).records, sid);
    } catch {
      return undefined;
    }
  };
  /** Sessions other replicas claimed while this one was away, with the tenure this one had. */
  const leftAtStart = new Map<string, number>();
  /** Whether a tenure of `sid` after `epoch` holds it whole (or it ended): then this journal's copy may go. */
  const heldWholeAfter = (sid: string, epoch: number): boolean => {
    for (const t of claims!.tenures(sid)) {
      if (t.epoch <= epoch) break;
      if (t.owner === '') return true;
      // An unreadable journal says nothing: look at the tenure before.
      const c = chainAt(t, sid);
      if (c === 'ended' || (c && c.epoch === t.epoch)) return true;
    }
    return false;
  };

  const replay = async (): Promise<number> => {
    let n = 0;
    for (const [i, { header: h, body }] of recovered.records.entries()) {
      if (superseded(h, i)) continue;
      await apply(h, body);
      n++;
    }
    // Sessions other replicas took over while this one was away are theirs now.
    if (claims) {
      for (const s of [...store.all()]) {
        if (!fenced(s.id) && epochs.get(s.id)) continue;
        leftAtStart.set(s.id, epochs.get(s.id) ?? 0);
        letGo(s.id);
      }
      claims.prune(24 * 3600 * 1000);
    }
    live = true;
    return n;
  };

  /**
   * Takes session `sid` over from the replica that last held it (shared directories): claims the
   * next epoch, which fences that replica, then reads its journal (everything it acknowledged is
   * there by then), rebuilds the session from its records and copies them into this journal.
   */
  const adopting = new Map<string, Promise<Session | undefined>>();
  /** Resolves to the session rebuilt here, if any: a request that waited for it answers that it moved if it is let go of. */
  const adopt = async (sid: string, token: string | null): Promise<Session | undefined> => {
    if (!claims || token === null) return;
    // The newest tenure that wrote its records: a claimant that died before writing any left none.
    const find = () => {
      for (const t of claims.tenures(sid)) {
        // A tombstone, or a holder's journal that says the session ended: it stays ended.
        if (t.owner === '') return null;
        if (t.owner === o.replica && t.epoch === epochs.get(sid)) return null;
        const c = chainAt(t, sid);
        if (c === 'ended') return null;
        if (c && c.epoch === t.epoch) return c;
      }
      return null;
    };
    const before = find();
    const first = before?.chain[0].header;
    // Only the holder of its token moves a session.
    if (!first || !hashToken(token).equals(Buffer.from(first.token_hash as string, 'base64url'))) return;
    const epoch = claims.claim(sid);
    if (epoch === null) throw fail('session_moved', `another replica is taking session \`${sid}\` over at this moment: send the request again`, { retry_after: 1 });
    // Read again after the claim: the last holder answers nothing more, so what it answered is there.
    const found = find();
    // Ended meanwhile: the claim goes with the others when its holder clears them.
    if (!found) return;
    // Half a session is never served: until it is whole, requests for it are told to come again.
    store.rebuilding.add(sid);
    try {
      for (const { header: h, body } of found.chain) await apply(h, body, true);
      // Its records end with its deletion (a DELETE replayed): nothing to hold.
      if (!store.get(sid)) return;
      // The copies, then the record that says they are whole: a crash between leaves no start.
      await Promise.all(found.chain.map(({ header: h, body }, i) => journal.append(i === 0 ? { ...h, epoch, copy: true } : h, body)));
      await journal.append({ t: 'adopted', id: sid, epoch });
      epochs.set(sid, epoch);
    } catch (e) {
      // The next request takes it over again, from the same records.
      drop(sid);
      throw e;
    } finally {
      store.rebuilding.delete(sid);
    }
    app.log.info({ session: sid, epoch, records: found.chain.length }, 'took the session over from another replica');
    return store.get(sid);
  };
  if (claims) {
    app.addHook('preHandler', async (req) => {
      const sid = (req.params as { sid?: unknown } | undefined)?.sid;
      if (typeof sid !== 'string' || isReplay(req) || !live) return;
      let adopted = await adopting.get(sid)?.catch(() => undefined);
      if (fenced(sid)) letGo(sid);
      if (!store.get(sid)) {
        let p = adopting.get(sid);
        if (!p) {
          p = adopt(sid, bearer(req.headers)).finally(() => adopting.delete(sid));
          adopting.set(sid, p);
        }
        adopted = (await p) ?? adopted;
      }
      // A session taken over here and let go of again while this request waited (another replica
      // claimed it the moment it was whole) counts as found: onSend then answers that it moved,
      // not that there is no such session.
      (req as Tagged)[SEEN_SESSION] = store.get(sid) ?? adopted;
    });
  }

  /**
   * At start, after the replay: each session with nothing a file cannot hold (no scope open, no
   * live tape node, no snapshot) is written as one checkpoint record; the others keep their
   * records; ended sessions go. The journal then replays in one record per quiet session.
   */
  const compact = async () => {
    const checkpoints: JournalRecord[] = [];
    const kept = new Set<string>();
    for (const s of store.all()) {
      if (!quiet(s)) {
        kept.add(s.id);
        continue;
      }
      checkpoints.push((await s.run(() => checkpointOf(s))) as unknown as JournalRecord);
    }
    // Taken over while this replica was away: kept here until a newer tenure holds it whole, since
    // a claimant that died before its takeover was whole left it nowhere else.
    if (claims) for (const [sid, epoch] of leftAtStart) if (!heldWholeAfter(sid, epoch)) kept.add(sid);
    const tail = recovered.records.filter((r, i) => kept.has(ownerOf(r.header)) && !superseded(r.header, i));
    const sizes = await journal.replaceWith([...checkpoints, ...tail]);
    return { ...sizes, checkpoints: checkpoints.length };
  };

  return { durability, recovered, replay, compact, shutdown };
}
