/**
 * Named snapshots of a session (issue 19, item 3), so that a notebook can branch an experiment and
 * go back: the bound arrays and gradient buffers as one safetensors file (the bytes GET /export
 * answers), with what the file cannot say beside it: each buffer's grad_req and fresh_grad, the
 * definitions, and the random stream's position. Restoring replaces all of that at once; forking
 * restores into a new session.
 *
 * Tapes are not kept: a snapshot is taken between requests with no scope open, and what it holds
 * comes back as leaves, as arrays read from a file do.
 */
import type { Definition } from '../expr/interp.js';
import type { GradReq } from '../program/format.js';
import { attachGrad, gradOf, gradReqOf, isFreshGrad, setFreshGrad } from '../autograd/slot.js';
import { fail } from '../errors.js';
import { arraysOfFile, exportSession } from './files.js';
import { Deferred } from './deferred.js';
import type { Session } from './session.js';

export interface Snapshot {
  name: string;
  createdAt: Date;
  /** The arrays as safetensors bytes. */
  file: Uint8Array;
  arrays: number;
  gradReqs: Map<string, { req: GradReq; fresh: boolean }>;
  definitions: Definition[];
  random: { seed: number; counter: number };
}

export interface SnapshotInfo {
  name: string;
  created_at: string;
  arrays: number;
  definitions: number;
  bytes: number;
}

export function snapshotInfo(p: Snapshot): SnapshotInfo {
  return { name: p.name, created_at: p.createdAt.toISOString(), arrays: p.arrays, definitions: p.definitions.length, bytes: p.file.byteLength };
}

function noOpenScope(s: Session, what: string): void {
  if (s.scopes.stack.length > 0) {
    throw fail('scope_open', `${what} needs no autograd scope open across requests (this session has ${s.scopes.stack.length}); close them with POST /autograd/exit first`);
  }
}

/** The bytes all of a session's snapshots hold. */
export function snapshotBytes(s: Session): number {
  let n = 0;
  for (const p of s.snapshots.values()) n += p.file.byteLength;
  return n;
}

/**
 * What a snapshot or a journal checkpoint keeps of `s`, read now: each buffer's grad_req and
 * fresh_grad, the definitions, the random stream; and the arrays as safetensors bytes, read once
 * their kernels are done (inside Session.run).
 */
export function captureState(s: Session) {
  const gradReqs = new Map<string, { req: GradReq; fresh: boolean }>();
  for (const [n, a] of s.names) {
    const req = gradReqOf(a);
    if (req) gradReqs.set(n, { req, fresh: isFreshGrad(a) });
  }
  return { gradReqs, definitions: [...s.definitions.values()], random: s.randomState(), arrays: s.names.size, file: exportSession(s) };
}

/**
 * Takes snapshot `name` (replacing one of that name). Its state is read when the request runs and
 * its arrays once their kernels are done, as an export reads them: answered through Session.run.
 */
export function takeSnapshot(s: Session, name: string): Deferred<Promise<SnapshotInfo>> {
  noOpenScope(s, 'a snapshot');
  const l = s.limits;
  if (!s.snapshots.has(name) && s.snapshots.size >= l.maxSnapshots) {
    throw fail('quota_exceeded', `this session holds ${s.snapshots.size} snapshots, the limit (GRADSERVE_MAX_SNAPSHOTS); delete one first`, { limit: 'snapshots', value: s.snapshots.size });
  }
  const { gradReqs, definitions, random, arrays, file } = captureState(s);
  return new Deferred(async () => {
    const parts = await file.read();
    const size = parts.reduce((n, p) => n + p.byteLength, 0);
    const held = snapshotBytes(s) - (s.snapshots.get(name)?.file.byteLength ?? 0);
    if (held + size > l.maxSessionBytes) {
      throw fail('quota_exceeded', `this session's snapshots would hold ${held + size} bytes; they may hold ${l.maxSessionBytes} (GRADSERVE_MAX_SESSION_BYTES). Delete a snapshot first`, { limit: 'snapshot_bytes', value: held + size });
    }
    const bytes = new Uint8Array(size);
    let at = 0;
    for (const p of parts) { bytes.set(p, at); at += p.byteLength; }
    const snap: Snapshot = { name, createdAt: new Date(), file: bytes, arrays, gradReqs, definitions, random };
    s.snapshots.set(name, snap);
    return snapshotInfo(snap);
  });
}

export function snapshotOf(s: Session, name: string): Snapshot {
  const p = s.snapshots.get(name);
  if (!p) throw fail('not_found', `this session has no snapshot \`${name}\`${s.snapshots.size ? ` (it has ${[...s.snapshots.keys()].map((k) => `\`${k}\``).join(', ')})` : ''}; take one with POST /snapshots`, { snapshot: name });
  return p;
}

/**
 * Puts the snapshot's state into `s`, replacing its bindings, definitions and random stream. All
 * or nothing: every array is allocated (where the quotas are enforced) before a name changes.
 */
export function restoreSnapshot(s: Session, p: Snapshot): void {
  noOpenScope(s, 'a restore');
  const { built } = arraysOfFile(s, p.file);
  for (const [n, a] of built) {
    const state = p.gradReqs.get(n);
    const g = gradOf(a);
    if (state && g) {
      attachGrad(a, state.req, g);
      setFreshGrad(a, state.fresh);
    }
  }
  s.names.clear();
  for (const [n, a] of built) s.names.set(n, a);
  s.definitions.clear();
  for (const d of p.definitions) s.definitions.set(d.name, d);
  s.setRandomState(p.random);
}
