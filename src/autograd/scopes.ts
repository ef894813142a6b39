/**
 * The scope stack of one session: MXNet's record / pause / train_mode / predict_mode `with`
 * blocks (and PyTorch's detect_anomaly), opened and closed across requests. Each scope remembers the flags it changed so that
 * exiting restores them exactly.
 */
import type { ScopeKind } from '../program/format.js';
import type { Tape } from './tape.js';
import { fail } from '../errors.js';

export interface Scope {
  kind: ScopeKind;
  prevRecording: boolean;
  prevTraining: boolean;
  prevAnomaly: boolean;
  /** The tape this scope records into (record scopes only). */
  tape: Tape | null;
  /** True when this scope created its tape (the outermost record scope). */
  ownsTape: boolean;
  /** The flags while this scope is the innermost. */
  isRecording: boolean;
  isTraining: boolean;
}

export class ScopeStack {
  isRecording = false;
  isTraining = false;
  /** Inside a detect_anomaly scope: every op's outputs are checked for NaN and Inf. */
  detectAnomaly = false;
  readonly stack: Scope[] = [];

  /** The tape new nodes go to: the innermost record scope's. */
  get tape(): Tape | null {
    for (let i = this.stack.length - 1; i >= 0; i--) if (this.stack[i].tape) return this.stack[i].tape;
    return null;
  }

  push(kind: ScopeKind, trainMode: boolean | undefined, newTape: () => Tape): Scope {
    const scope: Scope = { kind, prevRecording: this.isRecording, prevTraining: this.isTraining, prevAnomaly: this.detectAnomaly, tape: null, ownsTape: false, isRecording: false, isTraining: false };
    switch (kind) {
      case 'record':
        scope.tape = this.tape;
        if (!scope.tape) { scope.tape = newTape(); scope.ownsTape = true; }
        this.isRecording = true;
        this.isTraining = trainMode ?? true;
        break;
      case 'pause':
        this.isRecording = false;
        this.isTraining = trainMode ?? false;
        break;
      case 'train_mode':
        this.isTraining = true;
        break;
      case 'predict_mode':
        this.isTraining = false;
        break;
      case 'detect_anomaly':
        this.detectAnomaly = true;
        break;
    }
    scope.isRecording = this.isRecording;
    scope.isTraining = this.isTraining;
    this.stack.push(scope);
    return scope;
  }

  pop(): Scope {
    const scope = this.stack.pop();
    if (!scope) throw fail('scope_empty', 'there is no open autograd scope to exit; open one with POST /autograd/record (or pause, train-mode, predict-mode) first');
    this.isRecording = scope.prevRecording;
    this.isTraining = scope.prevTraining;
    this.detectAnomaly = scope.prevAnomaly;
    if (scope.ownsTape && scope.tape) scope.tape.close();
    return scope;
  }

  /** Runs fn with a scope pushed, popping it even when fn throws. */
  within<T>(kind: ScopeKind, trainMode: boolean | undefined, newTape: () => Tape, fn: () => T): T {
    this.push(kind, trainMode, newTape);
    try {
      return fn();
    } finally {
      this.pop();
    }
  }

  describe(): { kind: ScopeKind; tape: string | null; is_recording: boolean; is_training: boolean }[] {
    return this.stack.map((s) => ({ kind: s.kind, tape: s.tape?.id ?? null, is_recording: s.isRecording, is_training: s.isTraining }));
  }
}
