#!/usr/bin/env bash
# Validates the deployment files offline (run by .ci/run): the Kubernetes manifests that
# deploy/k8s/kustomization.yaml lists (kubernetes-validate, strict), the compose file
# (compose-spec schema), the GitHub workflows (their JSON schema), the Prometheus configs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${TREESERVE_PYENV:-target/pyenv}/bin
for tool in "$BIN/kubernetes-validate" "$BIN/check-jsonschema" promtool; do
  command -v "$tool" >/dev/null || { echo "error: $tool is missing (bash .ci/run installs it)" >&2; exit 1; }
done

# Every YAML file in deploy/k8s is a listed resource (or the kustomization), and exists.
mapfile -t RESOURCES < <("$BIN/python" - <<'PY'
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
"$BIN/kubernetes-validate" --kubernetes-version 1.30 --strict --quiet "${RESOURCES[@]}"
echo "kubernetes: ${#RESOURCES[@]} manifests valid"
"$BIN/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose.yaml
"$BIN/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
promtool check config deploy/prometheus/prometheus.yml
promtool check config deploy/prometheus/compose.yml
