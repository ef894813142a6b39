/**
 * Which replica serves each session of a state directory that replicas share (GRADSERVE_REPLICA
 * set): `sessions/<sid>/<epoch>` files, one per tenure, each created exclusively (O_EXCL) and
 * holding the claimant's name. Epochs are consecutive, so the newest tenure is the largest number,
 * two replicas racing for one epoch cannot both create it, and a holder of epoch e has been fenced
 * exactly when `<e+1>` exists: one stat, checked before every answer it gives for the session.
 * An ended session's newest tenure is a tombstone (an empty owner), kept a day so that no replica
 * rebuilds it from an older journal.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Tenure { epoch: number; owner: string }

export class Claims {
  constructor(private readonly dir: string, readonly replica: string) {
    mkdirSync(dir, { recursive: true });
  }

  /** Every tenure of `sid`, newest first; empty when the session was never claimed or has ended. */
  tenures(sid: string): Tenure[] {
    let names: string[];
    try {
      names = readdirSync(join(this.dir, sid));
    } catch {
      return [];
    }
    const out: Tenure[] = [];
    for (const n of names) {
      if (!/^[0-9]{1,15}$/.test(n)) continue;
      try {
        out.push({ epoch: Number(n), owner: readFileSync(join(this.dir, sid, n), 'utf8') });
      } catch {
        // Removed since the listing (the session ended): the others tell.
      }
    }
    return out.sort((a, b) => b.epoch - a.epoch);
  }

  /**
   * Takes `sid` for this replica at the epoch after its newest: the epoch, or null when another
   * replica took that epoch first.
   */
  claim(sid: string): number | null {
    const t = this.tenures(sid);
    if (Claims.ended(t)) return null;
    const epoch = (t[0]?.epoch ?? 0) + 1;
    mkdirSync(join(this.dir, sid), { recursive: true });
    try {
      writeFileSync(join(this.dir, sid, String(epoch)), this.replica, { flag: 'wx' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return null;
      throw e;
    }
    return epoch;
  }

  /** True when another replica has claimed `sid` after this replica's tenure `epoch`, or it ended. */
  superseded(sid: string, epoch: number): boolean {
    return statSync(join(this.dir, sid, String(epoch + 1)), { throwIfNoEntry: false }) !== undefined
      || statSync(join(this.dir, sid, String(epoch)), { throwIfNoEntry: false }) === undefined;
  }

  /**
   * Ends `sid` for good, if this replica's tenure `epoch` is still the newest: a tombstone (a
   * tenure with no owner) takes the next epoch exclusively, so a takeover racing the end either
   * fenced this replica first (false: the session lives on there) or finds the tombstone and
   * stops. Tombstones are pruned once old (prune).
   */
  end(sid: string, epoch: number): boolean {
    try {
      writeFileSync(join(this.dir, sid, String(epoch + 1)), '', { flag: 'wx' });
      return true;
    } catch {
      return false;
    }
  }

  /** True when the newest tenure of `sid` is a tombstone: the session ended. */
  static ended(tenures: Tenure[]): boolean {
    return tenures.length > 0 && tenures[0].owner === '';
  }

  /** Removes the claims of sessions that ended more than `ageMs` ago. */
  prune(ageMs: number, now = Date.now()): number {
    let n = 0;
    for (const sid of readdirSync(this.dir)) {
      const t = this.tenures(sid);
      if (!Claims.ended(t)) continue;
      const st = statSync(join(this.dir, sid, String(t[0].epoch)), { throwIfNoEntry: false });
      if (st && now - st.mtimeMs > ageMs) {
        rmSync(join(this.dir, sid), { recursive: true, force: true });
        n++;
      }
    }
    return n;
  }
}
