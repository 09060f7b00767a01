#!/usr/bin/env bash
# The container path, for real (run by .ci/run): build the static binary and the image
# with podman, push it to a local OCI registry (Debian's docker-registry), run two replicas
# from the registry image sharing a host registry directory, smoke-test both, publish a
# new model version and see both replicas serve it, then SIGTERM one under load: no request
# that was started may fail, and it must exit 0. Everything started is stopped on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CONTAINERS_CONF="$PWD/deploy/containers.conf"

for tool in podman runc docker-registry python3; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not installed (bash .ci/run installs it)" >&2; exit 1; }
done

ID="tsci$$"
TAG="treeserve:$ID"
WORK=$(mktemp -d)
REGISTRY_PID=""
NAMES=("$ID-a" "$ID-b" "$ID-default")
cleanup() {
  set +e
  for n in "${NAMES[@]}"; do podman rm -f "$n" >/dev/null 2>&1; done
  [ -n "$REGISTRY_PID" ] && kill "$REGISTRY_PID" 2>/dev/null && wait "$REGISTRY_PID" 2>/dev/null
  podman rmi -f "$TAG" "$PUSHED" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
step() { printf '\n-- %s\n' "$*"; }
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
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $RPORT), 0.2)" 2>/dev/null && break
  sleep 0.1
done
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

step "3. two replicas from the registry image, sharing a host registry directory"
SHARED="$WORK/shared"
mkdir -p "$SHARED" && cp -r models/iris "$SHARED/"
chmod -R a+rX "$SHARED"
PORTS=()
for n in "${NAMES[@]:0:2}"; do
  p=$(free_port); PORTS+=("$p")
  podman run -d --name "$n" -p "127.0.0.1:$p:8080" \
    -v "$SHARED:/registry:ro" -e TREESERVE_REGISTRY=/registry -e TREESERVE_SHUTDOWN_DELAY=2s \
    --read-only --cap-drop ALL --security-opt no-new-privileges \
    --no-healthcheck "$PUSHED" >/dev/null  # no systemd here to time podman's health checks
done
for p in "${PORTS[@]}"; do
  for _ in $(seq 100); do "$BIN" health --url "http://127.0.0.1:$p" --timeout 1s 2>/dev/null && break; sleep 0.1; done
  "$BIN" health --url "http://127.0.0.1:$p"
done
# The image's own health check runs inside it (no shell, no curl).
podman exec "${NAMES[0]}" /treeserve health
echo "both replicas ready"

step "4. smoke test both"
for p in "${PORTS[@]}"; do
  "$BIN" smoke "http://127.0.0.1:$p" --junit "$WORK/smoke-$p.xml"
done

step "5. publish a new version into the shared directory: both replicas serve it within 5 s"
"$BIN" train --data models/data/iris.csv --max-depth 2 --output "$WORK/new.tsm" >/dev/null
NEW=$("$BIN" publish "$WORK/new.tsm" --registry "$SHARED" --alias production)
chmod -R a+rX "$SHARED"
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

step "7. stop everything"
echo "container test passed"
