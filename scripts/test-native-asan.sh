#!/usr/bin/env bash
# npm run test:native:asan — the native engine's tests under AddressSanitizer + UBSan.
#
# The addon is rebuilt with sanitizers in a scratch copy of the sources with a modified
# binding.gyp (outside the repository, so vitest's default glob never picks the copy up), so the regular build/Release/gradserve.node (which colleagues rebuild
# while they work) is never touched. The copy has the same layout as the repository
# (src/engine/native.ts loads ../../build/Release/gradserve.node relative to itself), so the
# unmodified test/engine/native.test.ts loads the sanitized addon without any path override.
#
# Usage: scripts/test-native-asan.sh [extra vitest args]
#   ASAN_WORK=dir  where the copy is built (default: ${TMPDIR:-/tmp}/gradserve-asan-$UID)
#   ASAN_FUZZ=N    also run N cases of the HTTP fuzzer against a server using the sanitized addon
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${ASAN_WORK:-${TMPDIR:-/tmp}/gradserve-asan-$(id -u)}"
cd "$ROOT"

LIBASAN="$(gcc -print-file-name=libasan.so)"
if [ ! -e "$LIBASAN" ]; then
  echo "libasan.so not found (gcc -print-file-name=libasan.so gave '$LIBASAN'); install gcc's sanitizer runtime" >&2
  exit 2
fi

# ---- 1. a scratch copy with sanitizer flags ------------------------------------------------
rm -rf "$WORK/src" "$WORK/test"
mkdir -p "$WORK"
mkdir -p "$WORK/test/engine" "$WORK/test/helpers"
cp -r src "$WORK/src"
cp test/engine/native.test.ts test/engine/commands.test.ts test/engine/stream.test.ts test/engine/fair.test.ts test/engine/transcendental.test.ts "$WORK/test/engine/"
cp test/helpers/*.ts test/helpers/*.mjs "$WORK/test/helpers/"
cp package.json tsconfig.json "$WORK/"
ln -sfn "$ROOT/node_modules" "$WORK/node_modules"

# -O1 -g keeps stack traces readable; -fno-sanitize-recover makes any UB finding fatal, so a
# finding cannot scroll past unnoticed. -O3 is replaced (not appended to) so flags do not fight.
SAN="'-O1', '-g', '-fno-omit-frame-pointer', '-fsanitize=address,undefined', '-fno-sanitize-recover=undefined'"
sed -e "s/'-O3'/$SAN/g" \
    -e "s/'ldflags': \[ '-pthread' \]/'ldflags': [ '-pthread', '-fsanitize=address,undefined' ]/" \
    binding.gyp > "$WORK/binding.gyp"
n_cflags=$(grep -c -- "-fsanitize=address,undefined'" "$WORK/binding.gyp" || true)
if [ "$n_cflags" -lt 3 ]; then
  echo "could not inject sanitizer flags into binding.gyp (found $n_cflags of 3 places); its layout changed" >&2
  exit 2
fi

# ---- 2. build (node headers from the system node, as the regular build does) ---------------
echo "== building the sanitized addon in $WORK"
( cd "$WORK" && "$ROOT/node_modules/.bin/node-gyp" --nodedir=/usr rebuild -j "$(nproc)" >"$WORK/build.log" 2>&1 ) || {
  tail -50 "$WORK/build.log" >&2
  echo "sanitized build failed (full log: $WORK/build.log)" >&2
  exit 1
}
# Read ldd's whole output first: with pipefail, `ldd | grep -q` fails at random when grep exits
# before ldd has finished writing (SIGPIPE).
deps="$(ldd "$WORK/build/Release/gradserve.node")"
if [[ "$deps" != *libasan* ]]; then
  echo "the built addon is not linked against libasan" >&2
  exit 1
fi

# ---- 3. run the native tests with the sanitizer runtime preloaded --------------------------
# Node itself is not instrumented, so the runtime must be preloaded. Leak checking is off: node
# and V8 keep allocations alive until exit, which LSan would report; the test checks the
# addon's own live bytes (nativeBytesLive) instead. allocator_may_return_null: the tests ask for
# absurd sizes on purpose and expect the addon's bad_alloc path (a JS error), which is what glibc
# gives; ASan's default is to abort instead.
export LD_PRELOAD="$LIBASAN"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
LOG="$WORK/test.log"
echo "== running test/engine/native.test.ts, commands.test.ts, stream.test.ts, fair.test.ts and transcendental.test.ts under ASan+UBSan (log: $LOG)"
set +e
( cd "$WORK" && "$ROOT/node_modules/.bin/vitest" run test/engine/native.test.ts test/engine/commands.test.ts test/engine/stream.test.ts test/engine/fair.test.ts test/engine/transcendental.test.ts --pool=forks "$@" ) 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}

if [ "${ASAN_FUZZ:-0}" -gt 0 ]; then
  echo "== HTTP fuzz ($ASAN_FUZZ cases) against a server on the sanitized addon"
  rm -rf "$WORK/test/fuzz"
  cp -r "$ROOT/test/fuzz" "$WORK/test/fuzz"
  cp "$ROOT/test/helpers/gc-preload.mjs" "$WORK/test/helpers/"
  ( cd "$WORK" && FUZZ_CASES="$ASAN_FUZZ" FUZZ_ROOT="$WORK" node --import tsx "$WORK/test/fuzz/run.ts" ) 2>&1 | tee -a "$LOG"
  fstatus=${PIPESTATUS[0]}
  [ "$fstatus" -ne 0 ] && status=$fstatus
fi
set -e

if grep -qE "ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer" "$LOG"; then
  echo "sanitizer findings above" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "tests failed under the sanitizer (exit $status)" >&2
  exit "$status"
fi
echo "== no sanitizer findings"
