/**
 * The write-ahead journal of a state directory (GRADSERVE_STATE_DIR): one append-only file of
 * records, each `length (u32 LE) | crc32 (u32 LE) | payload`, the payload a JSON header (its
 * length first, u32 LE) and the request body's bytes. Appends made while a write is under way go
 * out together with one fdatasync (group commit), and each append's promise settles when its
 * record is on disk, so that an answer waits for exactly its own durability.
 *
 * Opening reads every record back. A torn or corrupt tail (a crash mid-write, a bad sector) is
 * cut at the last good record and reported; it never stops the server from starting.
 */
import { mkdirSync } from 'node:fs';
import { open, rename, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';
import { fail } from '../errors.js';

export interface JournalRecord {
  header: Record<string, unknown>;
  body: Uint8Array | null;
}

export interface Recovered {
  records: JournalRecord[];
  /** Set when the tail was cut: where, how many bytes went, and why. */
  cut: { at: number; dropped: number; reason: string } | null;
}

const FRAME = 8;

function frame(header: Record<string, unknown>, body: Uint8Array | null): Buffer[] {
  const h = Buffer.from(JSON.stringify(header), 'utf8');
  const lead = Buffer.alloc(FRAME + 4);
  const payloadLength = 4 + h.length + (body?.byteLength ?? 0);
  lead.writeUInt32LE(payloadLength, 0);
  lead.writeUInt32LE(h.length, 8);
  let c = crc32(lead.subarray(8));
  c = crc32(h, c);
  if (body) c = crc32(body, c);
  lead.writeUInt32LE(c >>> 0, 4);
  return body ? [lead, h, Buffer.from(body.buffer, body.byteOffset, body.byteLength)] : [lead, h];
}

/** Every whole, intact record of `data`, and where the first bad one starts. */
export function readRecords(data: Buffer): Recovered {
  const records: JournalRecord[] = [];
  let at = 0;
  const cut = (reason: string): Recovered => ({ records, cut: { at, dropped: data.length - at, reason } });
  while (at < data.length) {
    if (data.length - at < FRAME + 4) return cut('a record is cut short in its frame');
    const length = data.readUInt32LE(at);
    const sum = data.readUInt32LE(at + 4);
    if (length < 4 || at + FRAME + length > data.length) return cut('a record is cut short');
    const payload = data.subarray(at + FRAME, at + FRAME + length);
    if ((crc32(payload) >>> 0) !== sum) return cut('a record fails its checksum');
    const hl = payload.readUInt32LE(0);
    if (4 + hl > length) return cut('a record header overruns its record');
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(payload.subarray(4, 4 + hl).toString('utf8')) as Record<string, unknown>;
    } catch {
      return cut('a record header is not JSON');
    }
    const body = 4 + hl < length ? new Uint8Array(payload.subarray(4 + hl)) : null;
    records.push({ header, body });
    at += FRAME + length;
  }
  return { records, cut: null };
}

interface Pending { bufs: Buffer[]; bytes: number; resolve(): void; reject(e: unknown): void }

export class Journal {
  private pending: Pending[] = [];
  private writing = false;
  /** Records appended and made durable, for /metrics and tests. */
  records = 0;
  syncs = 0;

  private constructor(private fh: FileHandle, private size: number, readonly path: string, private readonly sync: boolean) {}

  /**
   * Opens (creating) the journal of `dir`, recovering what it holds. With `sync` (the default)
   * each batch is fdatasync'd, so an answer survives a power loss; without, it is written to the
   * kernel, which a killed or crashed process cannot lose, at a fraction of the cost.
   */
  static async open(dir: string, sync = true): Promise<{ journal: Journal; recovered: Recovered }> {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'journal.log');
    const fh = await open(path, 'a+');
    const data = await fh.readFile();
    const recovered = readRecords(data);
    let size = data.length;
    if (recovered.cut) {
      await fh.truncate(recovered.cut.at);
      await fh.datasync();
      size = recovered.cut.at;
    }
    return { journal: new Journal(fh, size, path, sync), recovered };
  }

  /** Queues a record; resolves once it is on disk. A failed write is 507, and cut back off the file. */
  append(header: Record<string, unknown>, body: Uint8Array | null = null): Promise<void> {
    const bufs = frame(header, body);
    return new Promise((resolve, reject) => {
      this.pending.push({ bufs, bytes: bufs.reduce((n, b) => n + b.length, 0), resolve, reject });
      if (!this.writing) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.writing = true;
    try {
      while (this.pending.length) {
        const batch = this.pending.splice(0);
        const bufs = batch.flatMap((p) => p.bufs);
        const bytes = batch.reduce((n, p) => n + p.bytes, 0);
        try {
          let done = 0;
          while (done < bytes) {
            const { bytesWritten } = await this.fh.writev(done === 0 ? bufs : [Buffer.concat(bufs).subarray(done)], this.size + done);
            if (bytesWritten === 0) throw new Error('the journal write made no progress');
            done += bytesWritten;
          }
          if (this.sync) await this.fh.datasync();
          this.size += bytes;
          this.records += batch.length;
          this.syncs++;
          for (const p of batch) p.resolve();
        } catch (e) {
          // A torn record would hide every later one from recovery: the file goes back to its last
          // good end before anything else is written.
          await this.fh.truncate(this.size).catch(() => undefined);
          const err = fail('insufficient_storage', `the change could not be made durable in the state directory (${(e as Error).message}); it was not acknowledged and will not survive a restart`);
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      this.writing = false;
    }
  }

  /**
   * Replaces the whole journal with `records` (a compaction): written beside it, synced, and
   * renamed over it, so that a crash leaves either the old journal or the new one. Only while
   * nothing is being appended (at start, before the server listens).
   */
  async replaceWith(records: JournalRecord[]): Promise<{ before: number; after: number }> {
    if (this.writing || this.pending.length) throw new Error('internal: a journal is compacted only while nothing is appended');
    const tmp = `${this.path}.tmp`;
    const out = await open(tmp, 'w');
    let after = 0;
    try {
      for (const r of records) {
        const bufs = frame(r.header, r.body);
        await out.writev(bufs);
        after += bufs.reduce((n, b) => n + b.length, 0);
      }
      await out.datasync();
    } finally {
      await out.close();
    }
    const before = this.size;
    await this.fh.close();
    await rename(tmp, this.path);
    // The rename itself is made durable by syncing the directory that holds it.
    const d = await open(dirname(this.path), 'r');
    await d.sync().catch(() => undefined);
    await d.close();
    this.fh = await open(this.path, 'a+');
    this.size = after;
    return { before, after };
  }

  async close(): Promise<void> {
    while (this.writing || this.pending.length) await new Promise((r) => setTimeout(r, 5));
    await this.fh.close();
  }
}
