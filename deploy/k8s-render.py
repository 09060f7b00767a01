#!/usr/bin/env python3
"""Renders a kustomize overlay offline (kustomize is not installed where CI runs), for
deploy/validate.sh: the overlay's base resources with its strategic-merge patches applied,
one YAML file per resource into OUT_DIR; prints the files' paths.

    python3 deploy/k8s-render.py OVERLAY_DIR OUT_DIR

Only what the overlays here use, and an error for anything else (never a silently wrong
rendering): `resources` (files, or directories holding a kustomization.yaml), `patches`
with `path` (one strategic-merge patch per file), `$patch: delete` on a whole resource or
on a list item, and lists merged by their Kubernetes merge key. The base's `labels` and
`images` transformers are not applied: they do not change what is validated.
"""

import pathlib
import sys

import yaml

# Lists of objects merged item by item (their patchMergeKey in the Kubernetes API);
# any other list in a patch replaces the base's list, as strategic merge does.
MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
              "volumeMounts": "mountPath", "ports": "containerPort"}
KNOWN = {"apiVersion", "kind", "resources", "patches", "labels", "images"}


def fail(msg):
    sys.exit(f"k8s-render: {msg}")


def load_kustomization(path):
    k = yaml.safe_load((path / "kustomization.yaml").read_text())
    unknown = set(k) - KNOWN
    if unknown:
        fail(f"{path}/kustomization.yaml: fields this renderer does not apply: {sorted(unknown)}")
    docs = []
    for r in k.get("resources", []):
        p = (path / r).resolve()
        docs += load_kustomization(p) if p.is_dir() else [d for d in yaml.safe_load_all(p.read_text()) if d]
    for patch in k.get("patches", []):
        if set(patch) != {"path"}:
            fail(f"{path}: only `patches: - path: FILE` (strategic merge) is rendered, not {patch}")
        patches = [d for d in yaml.safe_load_all((path / patch["path"]).read_text()) if d]
        if len(patches) != 1:
            fail(f"{path / patch['path']}: one patch per file")
        docs = apply(docs, patches[0], path / patch["path"])
    return docs


def ident(doc):
    return doc["kind"], doc["metadata"]["name"]


def apply(docs, patch, where):
    matches = [d for d in docs if ident(d) == ident(patch)]
    if len(matches) != 1:
        fail(f"{where}: patches {ident(patch)}, which the resources hold {len(matches)} times")
    if patch.get("$patch") == "delete":
        return [d for d in docs if d is not matches[0]]
    merged = merge(matches[0], patch, where)
    return [merged if d is matches[0] else d for d in docs]


def merge(base, patch, where, field=None):
    if isinstance(patch, dict):
        if "$patch" in patch:
            fail(f"{where}: $patch: {patch['$patch']} in {field} is not rendered")
        out = dict(base) if isinstance(base, dict) else {}
        for k, v in patch.items():
            out[k] = merge(out.get(k), v, where, k) if k in out else strip(v, where, k)
        return out
    if isinstance(patch, list) and field in MERGE_KEYS:
        key, out = MERGE_KEYS[field], list(base or [])
        for item in patch:
            i = next((n for n, b in enumerate(out) if b.get(key) == item.get(key)), None)
            if item.get("$patch") == "delete":
                if i is None or set(item) != {key, "$patch"}:
                    fail(f"{where}: deletes {field} {key}={item.get(key)}, which the base does not have")
                del out[i]
            elif i is None:
                out.append(strip(item, where, field))
            else:
                out[i] = merge(out[i], item, where, field)
        return out
    if isinstance(patch, list) and any(isinstance(i, dict) for i in patch) and base is not None:
        fail(f"{where}: list {field} has no merge key known to this renderer")
    return strip(patch, where, field)


def strip(value, where, field):
    """A value new to the base: must hold no directive."""
    if "$patch" in yaml.safe_dump(value):
        fail(f"{where}: $patch in a {field} the base does not have")
    return value


def main():
    overlay, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    for n, doc in enumerate(load_kustomization(overlay)):
        f = out / f"{n:02}-{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"
        f.write_text(yaml.safe_dump(doc, sort_keys=False))
        print(f)


if __name__ == "__main__":
    main()
