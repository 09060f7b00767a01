#!/usr/bin/env bash
# The container path, for real (run by .ci/run): build the static binary and the image
# with podman, push it to a local OCI registry (Debian's docker-registry), run two replicas
# from the registry image following one S3 registry (moto in server mode, from the venv
# $TREESERVE_OBJSTORE_ENV, default target/objstore-env), smoke-test both, publish a new model
# version into the bucket and see both replicas serve it, then SIGTERM one under load: no
# request that was started may fail, and it must exit 0; then stop the S3 server: the other
# replica reports the registry down and keeps serving. Everything started is stopped on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CONTAINERS_CONF="$PWD/deploy/containers.conf"

for tool in podman runc docker-registry python3; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not installed (bash .ci/run installs it)" >&2; exit 1; }
done
OBJENV=${TREESERVE_OBJSTORE_ENV:-target/objstore-env}
[ -x "$OBJENV/bin/moto_server" ] && "$OBJENV/bin/python" -c 'import boto3' 2>/dev/null || {
  echo "error: no moto_server and boto3 in $OBJENV (the S3 server the replicas follow): bash .ci/run" \
    "creates that venv from tests/objstore/requirements.txt; or point TREESERVE_OBJSTORE_ENV at one" >&2
  exit 1
}

ID="tsci$$"
TAG="treeserve:$ID"
WORK=$(mktemp -d)
REGISTRY_PID=""
MOTO_PID=""
PUSHED=""
NAMES=("$ID-a" "$ID-b" "$ID-default")
cleanup() {
  local rc=$?
  set +e
  if [ "$rc" != 0 ]; then  # what the containers said, for the failure's cause
    for n in "${NAMES[@]}"; do
      podman container exists "$n" 2>/dev/null && { echo "-- podman logs $n (last 20 lines)"; podman logs "$n" 2>&1 | tail -20; }
    done
  fi
  for n in "${NAMES[@]}"; do podman rm -f "$n" >/dev/null 2>&1; done
  [ -n "$REGISTRY_PID" ] && kill "$REGISTRY_PID" 2>/dev/null && wait "$REGISTRY_PID" 2>/dev/null
  [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null && wait "$MOTO_PID" 2>/dev/null
  podman rmi -f "$TAG" "$PUSHED" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
step() { printf '\n-- %s\n' "$*"; }
wait_port() {  # host port
  for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "error: nothing listens on 127.0.0.1:$1 after 10 s" >&2; return 1
}
# `until_true SECONDS WHAT CMD...`: polls CMD every 0.1 s; fails after SECONDS saying WHAT.
until_true() {
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@"; do
    [ $SECONDS -lt $deadline ] || { echo "error: $what" >&2; return 1; }
    sleep 0.1
  done
}
metric() {  # port name: the sample's value, or nothing
  python3 - "$1" "$2" <<'PY'
import sys, urllib.request
port, name = sys.argv[1], sys.argv[2]
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        for line in r.read().decode().splitlines():
            if line.split(" ")[0].split("{")[0] == name:
                print(line.rsplit(" ", 1)[1]); break
except OSError:
    pass
PY
}
BIN=target/x86_64-unknown-linux-gnu/container/treeserve

step "1. static profile-guided binary and image"
deploy/build-image.sh "$TAG" 2>&1 | tee "$WORK/build.log"
grep -q '^pgo: trained in .* profile(s) merged' "$WORK/build.log" ||
  { echo "error: the image's binary was not built profile-guided" >&2; exit 1; }
SIZE=$(podman image inspect "$TAG" --format '{{.Size}}')
echo "image size: $SIZE bytes"
[ "$SIZE" -le 20000000 ] || { echo "error: image is over 20 MB" >&2; exit 1; }
[ "$(podman image inspect "$TAG" --format '{{.Config.User}}')" = "65532:65532" ] || { echo "error: image does not run as 65532" >&2; exit 1; }
podman image inspect "$TAG" --format '{{.Config.Healthcheck.Test}}' | grep -q '/treeserve health' ||
  { echo "error: the image has no health check" >&2; exit 1; }
podman run --rm --entrypoint /treeserve "$TAG" --version

step "2. local OCI registry, push, remove the local copy"
RPORT=$(free_port)
cat > "$WORK/registry.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $WORK/oci
http:
  addr: 127.0.0.1:$RPORT
YML
docker-registry serve "$WORK/registry.yml" > "$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
wait_port "$RPORT"
PUSHED="127.0.0.1:$RPORT/treeserve:$ID"
podman push --tls-verify=false "$TAG" "docker://$PUSHED"
podman rmi -f "$TAG" >/dev/null
podman pull --tls-verify=false "$PUSHED" >/dev/null

step "3a. the image alone serves the shipped IRIS model"
DPORT=$(free_port)
podman run -d --name "$ID-default" -p "127.0.0.1:$DPORT:8080" --no-healthcheck "$PUSHED" >/dev/null
for _ in $(seq 100); do "$BIN" health --url "http://127.0.0.1:$DPORT" --timeout 1s 2>/dev/null && break; sleep 0.1; done
"$BIN" smoke "http://127.0.0.1:$DPORT" >/dev/null
echo "docker run IMAGE: /score answers with the shipped model"
podman rm -f "$ID-default" >/dev/null

step "3. an S3 server (moto), the IRIS model published into it, two replicas following it"
# moto listens on every address: the containers reach the host through the bridge
# network's gateway (host.containers.internal would do, but moto reads a bucket name
# from a host name's first label). The host's own calls go to loopback.
MPORT=$(free_port)
"$OBJENV/bin/moto_server" -H 0.0.0.0 -p "$MPORT" > "$WORK/moto.log" 2>&1 &
MOTO_PID=$!
wait_port "$MPORT"
GATEWAY=$(podman network inspect podman --format '{{range .Subnets}}{{.Gateway}}{{end}}')
[ -n "$GATEWAY" ] || { echo "error: podman's default network has no gateway address" >&2; exit 1; }
BUCKET=treeserve
STORE="s3://$BUCKET/registry"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
export AWS_ENDPOINT_URL="http://127.0.0.1:$MPORT"
"$OBJENV/bin/python" - "$BUCKET" <<'PY'
import os, sys, boto3
boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket=sys.argv[1])
PY
"$BIN" publish models/iris/versions/1/model.tsm --registry "$STORE" --alias production
PORTS=()
for n in "${NAMES[@]:0:2}"; do
  p=$(free_port); PORTS+=("$p")
  podman run -d --name "$n" -p "127.0.0.1:$p:8080" \
    -e TREESERVE_REGISTRY="$STORE" -e TREESERVE_CACHE_DIR=/cache -e TREESERVE_POLL_INTERVAL=2s \
    -e AWS_ENDPOINT_URL="http://$GATEWAY:$MPORT" -e AWS_ALLOW_HTTP=true -e AWS_REGION \
    -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY -e TREESERVE_SHUTDOWN_DELAY=2s \
    --read-only --tmpfs /cache:rw,size=64m,mode=1777 --cap-drop ALL --security-opt no-new-privileges \
    --no-healthcheck "$PUSHED" >/dev/null  # no systemd here to time podman's health checks
done
for p in "${PORTS[@]}"; do
  for _ in $(seq 100); do "$BIN" health --url "http://127.0.0.1:$p" --timeout 1s 2>/dev/null && break; sleep 0.1; done
  "$BIN" health --url "http://127.0.0.1:$p"
done
# The image's own health check runs inside it (no shell, no curl).
podman exec "${NAMES[0]}" /treeserve health
for p in "${PORTS[@]}"; do
  [ "$(metric "$p" treeserve_registry_up)" = 1 ] || { echo "error: replica on $p does not report the S3 registry up" >&2; exit 1; }
done
echo "both replicas ready, following $STORE (treeserve_registry_up 1)"

step "4. smoke test both"
for p in "${PORTS[@]}"; do
  "$BIN" smoke "http://127.0.0.1:$p" --junit "$WORK/smoke-$p.xml"
done

step "5. publish a new version into the bucket: both replicas serve it within 5 s"
"$BIN" train --data models/data/iris.csv --max-depth 2 --output "$WORK/new.tsm" >/dev/null
NEW=$("$BIN" publish "$WORK/new.tsm" --registry "$STORE" --alias production)
for p in "${PORTS[@]}"; do
  deadline=$((SECONDS + 5))
  until python3 - "$p" "$NEW" <<'PY'
import json, sys, urllib.request
port, want = sys.argv[1], sys.argv[2]
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as r:
        sys.exit(0 if str(json.load(r)["version"]) == want else 1)
except OSError:
    sys.exit(1)
PY
  do
    [ $SECONDS -lt $deadline ] || { echo "error: replica on $p does not serve version $NEW within 5 s" >&2; exit 1; }
    sleep 0.1
  done
  echo "replica on port $p serves version $NEW"
done

step "6. SIGTERM one replica under load: every started request succeeds, exit code 0"
python3 deploy/drain_check.py "http://127.0.0.1:${PORTS[0]}" > "$WORK/drain.json" &
LOAD=$!
sleep 1
podman kill --signal TERM "${NAMES[0]}" >/dev/null
podman wait "${NAMES[0]}" >/dev/null
CODE=$(podman inspect "${NAMES[0]}" --format '{{.State.ExitCode}}')
wait "$LOAD" || { echo "error: requests failed during shutdown: $(cat "$WORK/drain.json")" >&2; exit 1; }
echo "load during shutdown: $(cat "$WORK/drain.json")"
[ "$CODE" = 0 ] || { echo "error: exit code $CODE after SIGTERM" >&2; podman logs "${NAMES[0]}" | tail -20; exit 1; }
echo "exit code 0"
"$BIN" smoke "http://127.0.0.1:${PORTS[1]}" >/dev/null && echo "the other replica still serves"

step "7. the S3 server goes away: the other replica reports it down and keeps serving"
kill "$MOTO_PID" && wait "$MOTO_PID" 2>/dev/null || true
MOTO_PID=""
PUSHED=""
registry_down() { [ "$(metric "${PORTS[1]}" treeserve_registry_up)" = 0 ]; }
until_true 15 "treeserve_registry_up is not 0 15 s after the S3 server stopped" registry_down
"$BIN" smoke "http://127.0.0.1:${PORTS[1]}" >/dev/null
echo "registry down (treeserve_registry_up 0), version $NEW still served"

step "8. stop everything"
echo "container test passed"
