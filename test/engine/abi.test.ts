/**
 * The TypeScript/C++ boundary checks itself: commands and kernels travel as numbers, so native.ts
 * compares the addon's tables (abi()) with its own when it loads the addon and refuses one that
 * differs, naming the first difference.
 */
import { describe, expect, it } from 'vitest';
import { ABI, checkAbi, loadNativeAddon, type Abi } from '../../src/engine/native.js';

const addon = loadNativeAddon();
if (!addon) throw new Error('native addon missing: run `npm run install` first');

/** A copy of this side's tables with `change` applied, as a rebuilt-elsewhere addon might report. */
const tampered = (change: Partial<Abi>): Abi => ({ ...ABI, ...change });
const swap = (xs: readonly string[], i: number, j: number): string[] => {
  const ys = [...xs];
  [ys[i], ys[j]] = [ys[j], ys[i]];
  return ys;
};

describe('the addon and native.ts agree on their tables', () => {
  it('the built addon reports exactly this side\'s tables', () => {
    const theirs = addon.abi();
    expect(() => checkAbi(ABI, theirs)).not.toThrow();
    expect(theirs).toEqual(ABI);
    // What the tables cover: every command and kernel the addon runs.
    expect(theirs.commands).toContain('ScatterAdd');
    expect(theirs.unary).not.toContain('step');
  });

  it('a reordered command list is refused, naming the first opcode that differs', () => {
    expect(() => checkAbi(ABI, tampered({ commands: swap(ABI.commands, 3, 4) })))
      .toThrow('commands[3] is "Eye" in the addon but "Arange" here; rebuild it (npm run build:native)');
  });

  it('a kernel the addon has and this side lacks is refused', () => {
    expect(() => checkAbi(ABI, tampered({ unary: [...ABI.unary, 'step'] })))
      .toThrow(`unary[${ABI.unary.length}] is "step" in the addon but missing here`);
  });

  it('a kernel this side has and the addon lacks is refused', () => {
    expect(() => checkAbi(ABI, tampered({ reduce: ABI.reduce.slice(0, -1) })))
      .toThrow(`reduce[${ABI.reduce.length - 1}] is missing in the addon but "${ABI.reduce.at(-1)}" here`);
  });

  it('renamed binary kernels, swapped dtype codes and other limits are refused', () => {
    expect(() => checkAbi(ABI, tampered({ binary: ABI.binary.map((b) => (b === 'pow' ? 'power' : b)) })))
      .toThrow(/binary\[4\] is "power" in the addon but "pow" here/);
    expect(() => checkAbi(ABI, tampered({ dtypes: ['float64', 'float32'] })))
      .toThrow(/dtypes\[0\] is "float64" in the addon but "float32" here/);
    expect(() => checkAbi(ABI, tampered({ maxRank: 16 }))).toThrow(/maxRank is 16 in the addon but 32 here/);
    expect(() => checkAbi(ABI, tampered({ maxHandles: 2 ** 20 }))).toThrow(/maxHandles is 1048576 in the addon/);
  });

  it('only the first difference is named', () => {
    expect(() => checkAbi(ABI, tampered({ unary: swap(ABI.unary, 0, 1), binary: [] })))
      .toThrow(/: unary\[0\] is "abs" in the addon but "neg" here;/);
  });

  it('an addon without the tables (built before them) is refused', () => {
    expect(() => checkAbi(ABI, undefined)).toThrow(/: commands is missing in the addon; rebuild/);
    const { dtypes: _gone, ...rest } = ABI;
    expect(() => checkAbi(ABI, rest)).toThrow(/: dtypes is missing in the addon; rebuild/);
  });
});
