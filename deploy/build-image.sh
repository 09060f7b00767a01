#!/usr/bin/env bash
# Builds the statically linked treeserve binary and the container image.
#
#   deploy/build-image.sh [IMAGE]          (default treeserve:dev)
#   deploy/build-image.sh --instrumented   only the profile-guided build's first step, the
#                                          instrumented binary (CI builds it ahead)
#
# Uses podman if present, else docker (CONTAINER_ENGINE overrides). The binary is built
# on the host (glibc, static-pie, profile-guided: needs wrk and llvm-profdata, see
# deploy/pgo.py) into target/x86_64-unknown-linux-gnu/container/ and copied into a
# FROM scratch image by deploy/Dockerfile.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
IMAGE=${1:-treeserve:dev}
ENGINE=${CONTAINER_ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}
TARGET=x86_64-unknown-linux-gnu

# Profile-guided by default (deploy/pgo.py: an instrumented build, a short training load,
# the optimized build); TREESERVE_PGO=0 builds it plainly (quicker, ~15% slower to serve).
export RUSTFLAGS='-C target-feature=+crt-static'
if [ "${1:-}" = --instrumented ]; then
  exec python3 deploy/pgo.py --profile container --target "$TARGET" --instrumented-only
fi
if [ "${TREESERVE_PGO:-1}" = 0 ]; then
  cargo build --locked --profile container --target "$TARGET" --bin treeserve
else
  python3 deploy/pgo.py --profile container --target "$TARGET"
fi
BIN=target/$TARGET/container/treeserve
# A static binary has no interpreter and no dynamic section.
if readelf -l "$BIN" | grep -q 'Requesting program interpreter'; then
  echo "error: $BIN is dynamically linked" >&2
  exit 1
fi
echo "binary: $BIN ($(du -h "$BIN" | cut -f1))"

# The object-store clients (rustls) verify TLS against the system's CA certificates and
# refuse to start without any: the image carries the build host's bundle
# (Debian/Ubuntu: apt-get install ca-certificates; SSL_CERT_FILE overrides the path).
CA=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
[ -s "$CA" ] || { echo "error: no CA bundle at $CA: install ca-certificates or set SSL_CERT_FILE" >&2; exit 1; }
mkdir -p target/container-certs && cp "$CA" target/container-certs/ca-certificates.crt

# docker format keeps HEALTHCHECK (the OCI format has no such field).
FORMAT=(); [ "$(basename "$ENGINE")" = podman ] && FORMAT=(--format docker)
"$ENGINE" build "${FORMAT[@]}" -f deploy/Dockerfile -t "$IMAGE" .
"$ENGINE" image inspect "$IMAGE" --format '{{.Size}}' | awk -v img="$IMAGE" '{printf "image: %s, %.1f MB\n", img, $1/1e6}'
