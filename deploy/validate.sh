#!/usr/bin/env bash
# Validates the deployment files offline (run by .ci/run): the Kubernetes manifests that
# deploy/k8s/kustomization.yaml lists (kubernetes-validate, strict), the object-store overlay
# rendered (deploy/k8s-render.py: no kustomize here) and its example Secret, the compose
# files (compose-spec schema), the GitHub workflows (their JSON schema), the Prometheus configs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${TREESERVE_PYENV:-target/pyenv}/bin
for tool in "$BIN/kubernetes-validate" "$BIN/check-jsonschema" promtool; do
  command -v "$tool" >/dev/null || { echo "error: $tool is missing (bash .ci/run installs it)" >&2; exit 1; }
done

# Every YAML file in deploy/k8s is a listed resource (or the kustomization), and exists.
# (Command substitution, not mapfile < <(...): a failing step must stop the script.)
LISTED=$("$BIN/python" - <<'PY'
import pathlib, sys, yaml
k8s = pathlib.Path("deploy/k8s")
listed = yaml.safe_load((k8s / "kustomization.yaml").read_text())["resources"]
present = {p.name for p in k8s.glob("*.yaml")} - {"kustomization.yaml"}
missing = [r for r in listed if not (k8s / r).is_file()]
unlisted = sorted(present - set(listed))
if missing or unlisted:
    sys.exit(f"kustomization.yaml: missing {missing}, unlisted {unlisted}")
for r in listed:
    print(k8s / r)
PY
)
mapfile -t RESOURCES <<< "$LISTED"
"$BIN/kubernetes-validate" --kubernetes-version 1.30 --strict --quiet "${RESOURCES[@]}"
echo "kubernetes: ${#RESOURCES[@]} manifests valid"

# The object-store overlay, rendered over the base, then validated like it.
OVERLAY=deploy/k8s/overlays/object-store
RENDERED=$(mktemp -d)
trap 'rm -rf "$RENDERED"' EXIT
RENDERED_LIST=$("$BIN/python" deploy/k8s-render.py "$OVERLAY" "$RENDERED")
mapfile -t OS_RESOURCES <<< "$RENDERED_LIST"
"$BIN/kubernetes-validate" --kubernetes-version 1.30 --strict --quiet "${OS_RESOURCES[@]}" "$OVERLAY/secret.example.yaml"
"$BIN/python" - "$OVERLAY/secret.example.yaml" "${OS_RESOURCES[@]}" <<'PY'
import sys, yaml
secret = yaml.safe_load(open(sys.argv[1]))
docs = [yaml.safe_load(open(f)) for f in sys.argv[2:]]
kinds = sorted(d["kind"] for d in docs)
def check(ok, what):
    if not ok:
        sys.exit(f"object-store overlay: {what}")
check(not {"PersistentVolumeClaim", "Job"} & set(kinds), f"still holds a PVC or the seed Job: {kinds}")
[deploy] = [d for d in docs if d["kind"] == "Deployment"]
pod = deploy["spec"]["template"]["spec"]
[c] = pod["containers"]
env = {e["name"]: e.get("value") for e in c.get("env", [])}
check(env.get("TREESERVE_REGISTRY", "").startswith("s3://"), f"TREESERVE_REGISTRY is {env.get('TREESERVE_REGISTRY')}, not s3://")
volumes = {v["name"]: v for v in pod.get("volumes", [])}
check(not any("persistentVolumeClaim" in v for v in volumes.values()), "a pod volume is a PVC")
mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
cache = env.get("TREESERVE_CACHE_DIR")
check(cache in mounts and "emptyDir" in volumes.get(mounts[cache], {}),
      f"TREESERVE_CACHE_DIR ({cache}) is not an emptyDir mount: {mounts}")
check("/registry" not in mounts, "the directory registry is still mounted")
refs = {f["secretRef"]["name"] for f in c.get("envFrom", []) if "secretRef" in f}
check(refs == {secret["metadata"]["name"]}, f"envFrom secretRefs {refs}, not the example Secret's name")
check(all(k.startswith("AWS_") for k in secret["stringData"]), "the example Secret holds keys other than AWS_*")
check(all("REPLACE-ME" in v for k, v in secret["stringData"].items() if k != "AWS_REGION"),
      "the example Secret holds a value that is not a REPLACE-ME placeholder")
print(f"object-store overlay: {len(docs)} manifests valid ({', '.join(kinds)}); s3 registry, "
      f"emptyDir cache, Secret {secret['metadata']['name']}, no PVC")
PY
"$BIN/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose.yaml deploy/compose.object-store.yaml
"$BIN/python" - deploy/compose.object-store.yaml <<'PY'
import sys, yaml
services = yaml.safe_load(open(sys.argv[1]))["services"]
replicas = [n for n, s in services.items() if "s3://" in str(s.get("environment", {}).get("TREESERVE_REGISTRY"))]
for n in replicas:
    s = services[n]
    cache = s["environment"].get("TREESERVE_CACHE_DIR")
    ok = (s.get("read_only") and s.get("cap_drop") == ["ALL"] and "healthcheck" in s
          and any(v.get("target") == cache and v.get("type") == "tmpfs" for v in s.get("volumes", [])))
    if not ok:
        sys.exit(f"compose.object-store.yaml: {n} is not read-only with all caps dropped, a health check and a tmpfs cache")
if len(replicas) != 2 or "--if-empty" not in services["registry-init"]["entrypoint"]:
    sys.exit("compose.object-store.yaml: expected two s3 replicas and a publish --if-empty init service")
print(f"compose.object-store.yaml: replicas {', '.join(replicas)} follow s3 with a tmpfs cache")
PY
"$BIN/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
promtool check config deploy/prometheus/prometheus.yml
promtool check config deploy/prometheus/compose.yml
