#!/usr/bin/env bash
# Container test (issues 2.7, 7.1): builds the image with docker/build-offline.sh, runs it with
# podman, walks the seed chapter (d2l "Automatic Gradient") over HTTP against it, checks the
# image's hardening (non-root, no compiler, health check, no CA left behind) and that SIGTERM
# drains an in-flight request and exits 0. Prints one PASS/FAIL line per check, then
# "N passed, N failed"; exits non-zero on any failure.
#
# Needs root, podman/buildah/runc/debootstrap (see docker/build-offline.sh) and node on the host
# (the HTTP walk runs in the host's node, with fetch).
#
# Environment:
#   GRADSERVE_IMAGE       image to build and test   (default localhost/gradserve:latest)
#   GRADSERVE_SKIP_BUILD=1  test the existing image, do not build
#   GRADSERVE_TEST_PORT   host port for -p           (default: a free one)
#   GRADSERVE_BACKEND     passed to the container when set (native|reference)
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${GRADSERVE_IMAGE:-localhost/gradserve:latest}"
NAME="gradserve-test-$$"
PODMAN=(podman --cgroup-manager cgroupfs --runtime runc)
WORK="$(mktemp -d /tmp/gradserve-container-test.XXXXXX)"
T0=$SECONDS
PASSED=0
FAILED=0
FAILS=()

log() { printf '[test-container %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
pass() { PASSED=$((PASSED + 1)); printf 'PASS  %s\n' "$*"; }
fail() { FAILED=$((FAILED + 1)); FAILS+=("$*"); printf 'FAIL  %s\n' "$*"; }
check() { # check NAME CMD...: pass when CMD exits 0
  local name="$1"; shift
  if "$@" >"$WORK/check.out" 2>&1; then pass "$name"; else fail "$name ($(tr '\n' ' ' <"$WORK/check.out" | cut -c1-300))"; fi
}

summary() {
  echo
  echo "==================== container test summary ($((SECONDS - T0))s) ===================="
  if [ "$FAILED" -gt 0 ]; then
    for f in "${FAILS[@]}"; do echo "  failed: $f"; done
    echo "RESULT: FAIL"
  else
    echo "RESULT: PASS"
  fi
  echo "$PASSED passed, $FAILED failed"
}

cleanup() {
  if "${PODMAN[@]}" container exists "$NAME" 2>/dev/null; then
    "${PODMAN[@]}" logs "$NAME" >"$WORK/container.log" 2>&1 || true
    "${PODMAN[@]}" rm -f -t 0 "$NAME" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

abort() { fail "$*"; summary; exit 1; }

[ "$(id -u)" = 0 ] || abort "must run as root (podman, buildah)"
command -v podman >/dev/null || abort "podman is missing: apt-get install -y debootstrap buildah podman runc uidmap fuse-overlayfs netavark aardvark-dns containernetworking-plugins iptables"
command -v node >/dev/null || abort "node is missing on the host"

# ---------------------------------------------------------------------------------------- build
if [ "${GRADSERVE_SKIP_BUILD:-0}" != 1 ]; then
  log "building $IMAGE with docker/build-offline.sh"
  tb=$SECONDS
  if GRADSERVE_IMAGE="$IMAGE" bash "$ROOT/docker/build-offline.sh" >"$WORK/build.log" 2>&1; then
    pass "image builds offline (docker/build-offline.sh, $((SECONDS - tb))s)"
    grep '^\[build-offline' "$WORK/build.log"
  else
    tail -n 60 "$WORK/build.log"
    echo "----"
    grep '^\[build-offline' "$WORK/build.log"
    abort "image build failed (docker/build-offline.sh)"
  fi
fi
"${PODMAN[@]}" image exists "$IMAGE" || abort "image $IMAGE does not exist"

# ------------------------------------------------------------------------------- image metadata
inspect() { "${PODMAN[@]}" image inspect --format "$1" "$IMAGE"; }
check "image user is numeric and not root ($(inspect '{{.Config.User}}'))" \
  bash -c '[[ "$1" =~ ^[0-9]+(:[0-9]+)?$ ]] && [ "${1%%:*}" != 0 ]' _ "$(inspect '{{.Config.User}}')"
check "image sets GRADSERVE_HOST=0.0.0.0" grep -qx 'GRADSERVE_HOST=0.0.0.0' <<<"$(inspect '{{range .Config.Env}}{{println .}}{{end}}')"
check "image journals sessions to its volume (GRADSERVE_STATE_DIR=/var/lib/gradserve)" \
  bash -c 'grep -qx GRADSERVE_STATE_DIR=/var/lib/gradserve <<<"$1" && grep -q /var/lib/gradserve <<<"$2"' _ \
  "$(inspect '{{range .Config.Env}}{{println .}}{{end}}')" "$(inspect '{{.Config.Volumes}}')"
check "image STOPSIGNAL is SIGTERM" grep -qx 'SIGTERM' <<<"$(inspect '{{.Config.StopSignal}}')"
check "image has a HEALTHCHECK on /healthz" grep -q '/healthz' <<<"$(inspect '{{.Config.Healthcheck}}')"
check "image exposes 8080" grep -q '8080' <<<"$(inspect '{{.Config.ExposedPorts}}')"
check "image CMD is node dist/src/server.js" grep -q 'node dist/src/server.js' <<<"$(inspect '{{join .Config.Cmd " "}}')"

# ------------------------------------------------------------------------------------------ run
PORT="${GRADSERVE_TEST_PORT:-$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')}"
# Limits: as high as this machine's hard limits allow (podman's default nofile of 1048576 is
# refused where the hard limit is lower).
HARD_NOFILE="$(ulimit -Hn)"; [ "$HARD_NOFILE" = unlimited ] && HARD_NOFILE=1048576
NOFILE=$(( HARD_NOFILE < 65536 ? HARD_NOFILE : 65536 ))
HARD_NPROC="$(ulimit -Hu)"; [ "$HARD_NPROC" = unlimited ] && HARD_NPROC=65536
NPROC=$(( HARD_NPROC < 16384 ? HARD_NPROC : 16384 ))
envs=(-e GRADSERVE_LOG_LEVEL=info)
[ -n "${GRADSERVE_BACKEND:-}" ] && envs+=(-e "GRADSERVE_BACKEND=$GRADSERVE_BACKEND")

log "starting $NAME on 127.0.0.1:$PORT (nofile=$NOFILE nproc=$NPROC)"
# --health-interval=disable: podman schedules health checks with systemd timers, and there is no
# systemd here; the check is run by hand below (podman healthcheck run).
if ! "${PODMAN[@]}" run -d --name "$NAME" \
      --ulimit "nofile=$NOFILE:$NOFILE" --ulimit "nproc=$NPROC:$NPROC" \
      --health-interval=disable \
      -p "127.0.0.1:$PORT:8080" "${envs[@]}" "$IMAGE" >"$WORK/run.out" 2>&1; then
  cat "$WORK/run.out"
  abort "podman run failed"
fi
BASE="http://127.0.0.1:$PORT"

healthy=0
for _ in $(seq 1 120); do
  if node -e 'fetch(process.argv[1]).then(async r=>{const j=await r.json();process.exit(r.ok&&j.status==="ok"?0:1)},()=>process.exit(1))' "$BASE/healthz" 2>/dev/null; then
    healthy=1; break
  fi
  if [ "$("${PODMAN[@]}" inspect --format '{{.State.Running}}' "$NAME" 2>/dev/null)" != true ]; then break; fi
  sleep 0.5
done
if [ "$healthy" != 1 ]; then
  "${PODMAN[@]}" logs "$NAME" 2>&1 | tail -n 40
  abort "GET /healthz never answered {status:\"ok\"} through -p 127.0.0.1:$PORT:8080"
fi
pass "GET /healthz answers {status:\"ok\"} through the published port"
check "GET /readyz answers 200" node -e 'fetch(process.argv[1]).then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))' "$BASE/readyz"
check "HEALTHCHECK command passes in the container (podman healthcheck run)" \
  env N="$NAME" bash -c '"$@" healthcheck run "$N" 2>/dev/null && [ "$("$@" inspect --format "{{.State.Health.Status}}" "$N" 2>/dev/null)" = healthy ]' \
  _ "${PODMAN[@]}"
check "server listens on 0.0.0.0 (startup log)" \
  bash -c '"$@" 2>&1 | grep -q "\"host\":\"0.0.0.0\""' _ "${PODMAN[@]}" logs "$NAME"
BACKEND_SEEN="$("${PODMAN[@]}" logs "$NAME" 2>&1 | sed -n 's/.*"backend":"\([a-z]*\)".*listening.*/\1/p' | head -n1)"
log "backend in use: ${BACKEND_SEEN:-unknown}"

# ------------------------------------------------------------------------------------ hardening
uid_line="$("${PODMAN[@]}" exec "$NAME" sh -c 'grep "^Uid:" /proc/1/status' 2>&1)"
check "server process (pid 1) runs as a non-root user ($(echo "$uid_line" | tr -s ' \t' ' '))" \
  bash -c 'set -- $1; [ "$1" = Uid: ] && [ "$2" != 0 ] && [ "$3" != 0 ]' _ "$uid_line"
check "podman exec id -u is not 0 ($("${PODMAN[@]}" exec "$NAME" id -u 2>&1))" \
  bash -c '[ "$("$@" 2>&1)" != 0 ]' _ "${PODMAN[@]}" exec "$NAME" id -u
check "no compiler or make in the image (g++ gcc cc c++ cpp make, /usr/bin/*gcc*)" \
  "${PODMAN[@]}" exec "$NAME" sh -c '
    found=0
    for t in g++ gcc cc c++ cpp make gmake clang ld as; do
      if command -v "$t" >/dev/null 2>&1; then echo "found $t: $(command -v "$t")"; found=1; fi
    done
    if ls /usr/bin /usr/local/bin 2>/dev/null | grep -E "(^|-)(gcc|g\+\+|c\+\+|cc|make)(-[0-9]+)?$"; then found=1; fi
    exit $found'
check "no npm CA bundle left in the image (/run/secrets/npm_ca)" \
  "${PODMAN[@]}" exec "$NAME" sh -c '! test -e /run/secrets/npm_ca'
check "the image runs Node.js ${GRADSERVE_NODE_MAJOR:-26}, the current LTS" \
  "${PODMAN[@]}" exec "$NAME" sh -c "node --version | grep -q '^v${GRADSERVE_NODE_MAJOR:-26}\\.'"
check "native addon is in the image (build/Release/gradserve.node)" \
  "${PODMAN[@]}" exec "$NAME" test -f /app/build/Release/gradserve.node
check "app files are not writable by the service user" \
  "${PODMAN[@]}" exec "$NAME" sh -c '! test -w /app/dist/src/server.js'

# ----------------------------------------------------------------------- the seed chapter, HTTP
cat >"$WORK/seed.mjs" <<'EOF'
// The cells of d2l "Automatic Gradient" as HTTP calls (API.md, "The seed chapter over HTTP").
const base = process.argv[2];
let failures = 0;
const ok = (name) => console.log(`PASS  seed: ${name}`);
const bad = (name, detail) => { failures++; console.log(`FAIL  seed: ${name} (${detail})`); };
const expect = (name, cond, detail) => (cond ? ok(name) : bad(name, detail));
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

let headers = { 'content-type': 'application/json' };
async function call(method, path, body) {
  const r = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json; try { json = JSON.parse(text); } catch { json = text; }
  if (r.status >= 300) throw new Error(`${method} ${path} -> ${r.status} ${text.slice(0, 300)}`);
  return json;
}

try {
  const s = await call('POST', '/v1/sessions', { seed: 7 });
  expect('POST /v1/sessions with a seed answers id and token', s.id && s.token, JSON.stringify(s));
  headers = { ...headers, authorization: `Bearer ${s.token}` };
  const S = `/v1/sessions/${s.id}`;

  // In [2]
  let r = await call('POST', `${S}/ops`, { expr: 'x = nd.arange(4).reshape((4, 1))', fetch: ['x'] });
  expect('x = nd.arange(4).reshape((4, 1)) -> [[0],[1],[2],[3]]', same(r.outputs?.x?.data, [[0], [1], [2], [3]]) && same(r.outputs.x.shape, [4, 1]), JSON.stringify(r.outputs?.x));
  // In [3]
  r = await call('POST', `${S}/arrays/x/attach-grad`, {});
  expect('x.attach_grad() -> grad_req write', r.grad_req === 'write', JSON.stringify(r));
  // In [4]
  r = await call('POST', `${S}/ops`, { record: true, expr: 'y = 2 * nd.dot(x.T, x)' });
  expect('with autograd.record(): y = 2 * nd.dot(x.T, x) -> y recorded', r.outputs?.y?.recorded === true, JSON.stringify(r));
  // In [5]
  r = await call('POST', `${S}/arrays/y/backward`, {});
  expect('y.backward() answers grads for x', !!r.grads?.x, JSON.stringify(r));
  // In [6]
  r = await call('GET', `${S}/arrays/x/grad`);
  expect('x.grad == [[0],[4],[8],[12]]', same(r.data, [[0], [4], [8], [12]]), JSON.stringify(r.data));
  r = await call('POST', `${S}/ops`, { expr: '(x.grad - 4 * x).norm().asscalar()' });
  expect('(x.grad - 4 * x).norm().asscalar() == 0', r.result === 0, JSON.stringify(r.result));
  // In [7]
  r = await call('GET', `${S}/autograd`);
  expect('autograd.is_training() -> False', r.is_training === false && r.is_recording === false, JSON.stringify(r));
  await call('POST', `${S}/autograd/record`, {});
  r = await call('GET', `${S}/autograd`);
  expect('inside autograd.record(): is_training() -> True', r.is_training === true && r.is_recording === true, JSON.stringify(r));
  r = await call('POST', `${S}/autograd/exit`);
  expect('leaving record() restores is_training False', r.is_training === false && r.is_recording === false, JSON.stringify(r));

  // In [8], [9]: the control flow stays with the client; each step is one request.
  await call('POST', `${S}/ops`, { expr: 'a = nd.random.normal(shape=1)' });
  await call('POST', `${S}/arrays/a/attach-grad`, {});
  await call('POST', `${S}/autograd/record`, {});
  await call('POST', `${S}/ops`, { expr: 'b = a * 2' });
  let steps = 0;
  for (;;) {
    const n = (await call('POST', `${S}/ops`, { expr: 'b.norm().asscalar()' })).result;
    if (typeof n !== 'number') throw new Error(`b.norm().asscalar() gave ${JSON.stringify(n)}`);
    if (!(n < 1000) || steps >= 200) break;
    await call('POST', `${S}/ops`, { expr: 'b = b * 2' });
    steps++;
  }
  const sum = (await call('POST', `${S}/ops`, { expr: 'b.sum().asscalar()' })).result;
  const branch = sum > 0 ? 'c = b' : 'c = 100 * b';
  await call('POST', `${S}/ops`, { expr: branch });
  r = await call('POST', `${S}/autograd/exit`);
  expect(`f(a): ${steps} doublings, branch "${branch}", recorded under one record scope`, steps > 0 && steps < 200 && r.is_recording === false, `steps=${steps} ${JSON.stringify(r)}`);
  r = await call('POST', `${S}/arrays/c/backward`, {});
  expect('c.backward() answers grads for a', !!r.grads?.a, JSON.stringify(r));
  // In [10]
  r = await call('POST', `${S}/ops`, { expr: 'a.grad == c / a' });
  const eq = r.result?.data;
  if (branch === 'c = b') {
    expect('a.grad == c / a -> [1.]', same(eq, [1]), JSON.stringify(r.result));
  } else {
    const v = async (n) => (await call('GET', `${S}/arrays/${n}?format=flat`)).data[0];
    const [ag, cv, av] = [(await call('GET', `${S}/arrays/a/grad?format=flat`)).data[0], await v('c'), await v('a')];
    const q = Math.abs(ag - cv / av) / Math.abs(ag);
    expect('a.grad == c / a (to 1e-6 on the c = 100 * b branch)', same(eq, [1]) || (typeof q === 'number' && q < 1e-6), `${JSON.stringify(r.result)} rel=${q}`);
  }
  const g = await call('GET', `${S}/arrays/a/grad`);
  const expected = (branch === 'c = b' ? 1 : 100) * 2 ** (steps + 1);
  expect(`a.grad == ${expected} (2^(doublings+1)${branch === 'c = b' ? '' : ' * 100'})`, same(g.data, [expected]), JSON.stringify(g.data));

  await call('DELETE', S);
  ok('DELETE session');
} catch (err) {
  bad('walk aborted', err.message);
}
process.exit(failures ? 1 : 0);
EOF
log "walking the seed chapter over HTTP"
node "$WORK/seed.mjs" "$BASE" >"$WORK/seed.out" 2>&1
cat "$WORK/seed.out"
PASSED=$((PASSED + $(grep -c '^PASS' "$WORK/seed.out")))
while IFS= read -r l; do FAILED=$((FAILED + 1)); FAILS+=("${l#FAIL  }"); done < <(grep '^FAIL' "$WORK/seed.out")
if ! grep -q '^PASS' "$WORK/seed.out" && ! grep -q '^FAIL' "$WORK/seed.out"; then fail "seed walk printed nothing"; fi

# ------------------------------------------------------------- SIGTERM drains in-flight request
# A session with a large matrix; one request of K chained 2000x2000 matmuls (K calibrated to take
# about 3 s, well inside close-with-grace's 10 s delay) is started, and SIGTERM is sent 0.6 s
# later, checking that it has not been answered yet.
cat >"$WORK/drain.mjs" <<'EOF'
const [base, out] = process.argv.slice(2);
const fs = await import('node:fs');
let headers = { 'content-type': 'application/json' };
const call = async (method, path, body) => {
  const r = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const t = await r.text();
  if (r.status >= 300) throw new Error(`${method} ${path} -> ${r.status} ${t.slice(0, 300)}`);
  return JSON.parse(t);
};
const s = await call('POST', '/v1/sessions', { seed: 1 });
headers = { ...headers, authorization: `Bearer ${s.token}` };
const S = `/v1/sessions/${s.id}`;
await call('POST', `${S}/ops`, { expr: 'm = nd.random.normal(shape=(2000, 2000)) / 50' });
let t = performance.now();
await call('POST', `${S}/ops`, { expr: 'p = nd.dot(m, m)' });
t = (performance.now() - t) / 1000;
const k = Math.max(2, Math.min(60, Math.ceil(3 / Math.max(t, 0.01))));
const expr = Array.from({ length: k }, () => 'p = nd.dot(p, m)').join('\n') + '\np.sum().asscalar()';
fs.writeFileSync(out + '.info', `${s.id} ${k} ${t.toFixed(3)}\n`);
// The long request: its status and duration are written when it completes.
t = performance.now();
try {
  const r = await fetch(base + `${S}/ops`, { method: 'POST', headers, body: JSON.stringify({ expr }) });
  const body = await r.text();
  fs.writeFileSync(out, `${r.status} ${((performance.now() - t) / 1000).toFixed(2)} ${body.slice(0, 200).replace(/\s+/g, ' ')}\n`);
} catch (err) {
  fs.writeFileSync(out, `ERR ${((performance.now() - t) / 1000).toFixed(2)} ${err.cause?.code ?? ''} ${err.message}\n`);
}
EOF
# ------------------------------------------------------- sessions outlive the container's process
cat >"$WORK/persist.mjs" <<'EOF'
// write: a session with an array, its id and token kept in a file; check: that session still
// answers the same array (after the container's process was stopped or killed, and started again).
import { readFileSync, writeFileSync } from 'node:fs';
const [mode, base, file] = process.argv.slice(2);
const call = async (method, path, token, body) => {
  const r = await fetch(base + path, { method, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: body && JSON.stringify(body) });
  return { status: r.status, json: await r.json().catch(() => null) };
};
if (mode === 'write') {
  const s = await call('POST', '/v1/sessions', null, { seed: 3 });
  await call('POST', `/v1/sessions/${s.json.id}/ops`, s.json.token, { expr: 'kept = nd.arange(6).reshape((2, 3)) * 1.5' });
  writeFileSync(file, JSON.stringify(s.json));
} else {
  const s = JSON.parse(readFileSync(file, 'utf8'));
  const r = await call('GET', `/v1/sessions/${s.id}/arrays/kept`, s.token);
  const ok = r.status === 200 && JSON.stringify(r.json.data) === JSON.stringify([[0, 1.5, 3], [4.5, 6, 7.5]]);
  console.log(ok ? 'ok' : `lost: ${r.status} ${JSON.stringify(r.json).slice(0, 200)}`);
  process.exit(ok ? 0 : 1);
}
EOF
check "a session is made before the restarts" node "$WORK/persist.mjs" write "$BASE" "$WORK/persist.json"

wait_healthy() {
  for _ in $(seq 1 120); do
    node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "$BASE/healthz" 2>/dev/null && return 0
    sleep 0.5
  done
  return 1
}

log "SIGTERM while a request is in flight"
node "$WORK/drain.mjs" "$BASE" "$WORK/drain.status" >"$WORK/drain.out" 2>&1 &
DRAIN_PID=$!
# Wait for the calibration, then for the long request to reach the server.
for _ in $(seq 1 200); do [ -s "$WORK/drain.status.info" ] && break; kill -0 "$DRAIN_PID" 2>/dev/null || break; sleep 0.1; done
sent=0
if [ -s "$WORK/drain.status.info" ]; then
  read -r DSID DK DT <"$WORK/drain.status.info"
  log "in-flight request: $DK chained 2000x2000 matmuls (one took ${DT}s)"
  # The request reaches the server within milliseconds; the server's own log cannot tell (pino
  # flushes only when the event loop turns, after the matmuls), so wait a fixed fraction of the
  # expected duration and check that no answer has come yet.
  sleep 0.6
  if [ -s "$WORK/drain.status" ]; then
    fail "the long request finished before SIGTERM could be sent ($(cat "$WORK/drain.status"))"
  else
    tsig=$SECONDS
    "${PODMAN[@]}" kill --signal TERM "$NAME" >/dev/null && sent=1
    log "SIGTERM sent"
  fi
else
  fail "drain set-up failed: $(tr '\n' ' ' <"$WORK/drain.out" | cut -c1-300)"
fi
wait "$DRAIN_PID" 2>/dev/null
if [ "$sent" = 1 ]; then
  status="$(cat "$WORK/drain.status" 2>/dev/null)"
  check "in-flight request completes with 200 after SIGTERM (${status%% \{*})" bash -c '[ "${1%% *}" = 200 ]' _ "$status"
  code="$(timeout 60 "${PODMAN[@]}" wait "$NAME" 2>&1 | tail -n1)"
  check "container exits 0 after SIGTERM (exit code ${code:-?}, $((SECONDS - tsig))s after the signal)" test "$code" = 0
  check "server logged that it drained on SIGTERM" \
    bash -c '"$@" 2>&1 | grep -q "draining and shutting down"' _ "${PODMAN[@]}" logs "$NAME"
fi

# The same container again (its state volume with it): after the SIGTERM above, then after SIGKILL.
if "${PODMAN[@]}" start "$NAME" >/dev/null 2>&1 && wait_healthy; then
  check "the session and its array are there after a SIGTERM and a start (the state volume)" node "$WORK/persist.mjs" check "$BASE" "$WORK/persist.json"
  "${PODMAN[@]}" kill --signal KILL "$NAME" >/dev/null 2>&1
  "${PODMAN[@]}" wait "$NAME" >/dev/null 2>&1
  if "${PODMAN[@]}" start "$NAME" >/dev/null 2>&1 && wait_healthy; then
    check "the session and its array are there after a SIGKILL and a start" node "$WORK/persist.mjs" check "$BASE" "$WORK/persist.json"
  else
    fail "the container did not answer again after SIGKILL and podman start"
  fi
else
  fail "the container did not answer again after podman start"
fi

if [ "$FAILED" -gt 0 ]; then
  echo "---- last container log lines ----"
  "${PODMAN[@]}" logs "$NAME" 2>&1 | tail -n 25
fi
summary
[ "$FAILED" = 0 ]
