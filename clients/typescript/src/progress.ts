/**
 * Progress of long uploads: a bar on a terminal's stderr, shown after half a second so quick
 * transfers print nothing, and nothing when stderr is a file or a pipe (logs and CI stay clean).
 * GRADSERVE_PROGRESS=0 turns it off, =1 shows it at once on any stream. A caller's `onProgress`
 * gets every update whatever the stream.
 */
export type ProgressCallback = (done: number, total: number) => void;

interface Stream { isTTY?: boolean; write(s: string): unknown }

function stderr(): Stream | null {
  const p = (globalThis as { process?: { stderr?: Stream; env?: Record<string, string | undefined> } }).process;
  return p?.stderr ?? null;
}

function setting(): string | undefined {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.GRADSERVE_PROGRESS;
}

export class Progress {
  private readonly start = Date.now();
  private readonly stream: Stream | null;
  private readonly delayMs: number;
  private shown = false;

  constructor(private readonly label: string, private readonly total: number, private readonly onProgress?: ProgressCallback) {
    const s = setting();
    const out = stderr();
    this.stream = s === '0' ? null : s === '1' || out?.isTTY ? out : null;
    this.delayMs = s === '1' ? 0 : 500;
  }

  update(done: number): void {
    this.onProgress?.(done, this.total);
    if (!this.stream || Date.now() - this.start < this.delayMs) return;
    this.shown = true;
    const frac = this.total ? done / this.total : 1;
    const width = 30;
    const filled = Math.round(width * frac);
    const mib = 1 << 20;
    const rate = done / Math.max((Date.now() - this.start) / 1000, 1e-3) / mib;
    this.stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${this.label}: ${(100 * frac).toFixed(1)}% (${Math.floor(done / mib)} of ${Math.floor(this.total / mib)} MiB, ${rate.toFixed(0)} MiB/s)`);
  }

  close(): void {
    this.update(this.total);
    if (this.shown) this.stream?.write('\n');
  }
}
