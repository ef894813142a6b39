/**
 * One process at a time serves a state directory: it holds the directory's lease (`lease.json`:
 * owner, epoch, renewed_at) and renews it every third of its term. A process that finds the lease
 * held and fresh waits; one that finds it stale (its holder died without letting go) takes it with
 * the next epoch. A holder that finds another owner in the file when it renews has been fenced: it
 * must stop at once, so that two processes never serve one directory's sessions.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

interface LeaseFile { owner: string; epoch: number; renewed_at: number }

export interface LeaseOptions {
  termMs: number;
  /** Called while waiting for a live holder's lease to lapse. */
  waiting?(held: LeaseFile): void;
  /** Called when another process took the lease: the caller must stop serving. */
  lost(now: LeaseFile | null): void;
}

function read(path: string): LeaseFile | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as LeaseFile;
  } catch {
    return null;
  }
}

function write(path: string, l: LeaseFile): void {
  // Whole or not at all: a reader never sees half a lease.
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(l));
  renameSync(tmp, path);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Lease {
  private timer: NodeJS.Timeout | null = null;

  private constructor(private readonly path: string, readonly owner: string, readonly epoch: number, private readonly o: LeaseOptions) {}

  static async acquire(dir: string, o: LeaseOptions): Promise<Lease> {
    const path = join(dir, 'lease.json');
    const owner = `${hostname()}:${process.pid}:${randomUUID()}`;
    for (;;) {
      const held = read(path);
      if (held && Date.now() - held.renewed_at < o.termMs) {
        o.waiting?.(held);
        await sleep(Math.max(50, o.termMs / 4));
        continue;
      }
      const mine = { owner, epoch: (held?.epoch ?? 0) + 1, renewed_at: Date.now() };
      write(path, mine);
      // Two newcomers may both have found it stale: the file's last writer has it.
      await sleep(Math.min(200, o.termMs / 10));
      if (read(path)?.owner !== owner) continue;
      const lease = new Lease(path, owner, mine.epoch, o);
      lease.timer = setInterval(() => lease.renew(), Math.max(20, o.termMs / 3));
      lease.timer.unref();
      return lease;
    }
  }

  private renew(): void {
    const now = read(this.path);
    if (!now || now.owner !== this.owner || now.epoch !== this.epoch) {
      this.stop();
      this.o.lost(now);
      return;
    }
    try {
      write(this.path, { owner: this.owner, epoch: this.epoch, renewed_at: Date.now() });
    } catch {
      // A full or failing disk: the next renewal tries again. Should the term lapse meanwhile,
      // a newcomer may take the lease, and this process is fenced at its next renewal.
    }
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Lets go (a graceful stop): the next process need not wait out the term. */
  release(): void {
    this.stop();
    const now = read(this.path);
    if (now?.owner === this.owner) write(this.path, { ...now, renewed_at: 0 });
  }
}
