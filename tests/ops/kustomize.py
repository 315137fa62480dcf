"""A small kustomize for the tests: renders deploy/k8s overlays without a kustomize binary.

It implements only the fields deploy/k8s uses (resources, namespace, images, replicas,
strategic-merge patches from files, secretGenerator from env files without a name hash) and
refuses any other, so it can never skip a field silently. .ci/validate-deploy renders the
overlays with `kubectl kustomize` too, when kubectl is there, and fails if the two differ.

A generator's env file that is absent (secrets.env, never committed) is read from its
`.example` beside it, as CI does.

    python -m tests.ops.kustomize deploy/k8s/overlays/prod     # YAML on stdout
"""

from __future__ import annotations

import base64
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]
SUPPORTED = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "images",
    "replicas",
    "patches",
    "secretGenerator",
    "generatorOptions",
}
SCALABLE = {"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass"}
# Lists that a strategic-merge patch merges item by item, and the key of their items.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}


def render(directory: Path) -> list[Manifest]:
    """The manifests the kustomization in `directory` produces."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise NotImplementedError(f"{directory}: unsupported kustomization fields {unknown}")
    objects: list[Manifest] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        if path.is_dir():
            objects += render(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    options = kustomization.get("generatorOptions", {})
    for generator in kustomization.get("secretGenerator", []):
        if not options.get("disableNameSuffixHash"):
            raise NotImplementedError("name-hash suffixes are not implemented")
        objects.append(_secret(directory, generator))
    for patch in kustomization.get("patches", []):
        if set(patch) != {"path"}:
            raise NotImplementedError(f"only strategic-merge patch files: {patch}")
        for doc in yaml.safe_load_all((directory / patch["path"]).read_text()):
            if doc:
                _apply_patch(objects, doc)
    for replica in kustomization.get("replicas", []):
        [target] = [
            o for o in objects if o["metadata"]["name"] == replica["name"] and o["kind"] in SCALABLE
        ]
        target["spec"]["replicas"] = replica["count"]
    for image in kustomization.get("images", []):
        for obj in objects:
            for container in _containers(obj):
                if _image_name(container["image"]) == image["name"]:
                    name = image.get("newName", image["name"])
                    container["image"] = f"{name}:{image['newTag']}" if "newTag" in image else name
    namespace = kustomization.get("namespace")
    if namespace:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = namespace
    return objects


def _secret(directory: Path, generator: dict[str, Any]) -> Manifest:
    data: dict[str, str] = {}
    for env in generator.get("envs", []):
        path = directory / env
        if not path.exists():
            path = path.with_name(path.name + ".example")
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                data[key] = base64.b64encode(value.encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": generator["name"]},
        "type": "Opaque",
        "data": data,
    }


def _apply_patch(objects: list[Manifest], patch: Manifest) -> None:
    matches = [
        i
        for i, obj in enumerate(objects)
        if obj["kind"] == patch["kind"] and obj["metadata"]["name"] == patch["metadata"]["name"]
    ]
    if len(matches) != 1:
        raise ValueError(
            f"patch {patch['kind']}/{patch['metadata']['name']}: {len(matches)} targets"
        )
    objects[matches[0]] = merge(objects[matches[0]], patch)


def merge(base: Any, patch: Any, field: str | None = None) -> Any:
    """A strategic merge: maps merge, the lists of MERGE_KEYS merge by key, the rest replace."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = merge(out[key], value, key)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        out_list = copy.deepcopy(base)
        for item in patch:
            index = next((i for i, x in enumerate(out_list) if x.get(key) == item.get(key)), None)
            if index is None:
                raise NotImplementedError(f"adding to {field} by patch is not implemented")
            out_list[index] = merge(out_list[index], item)
        return out_list
    return copy.deepcopy(patch)


def _containers(obj: Manifest) -> list[dict[str, Any]]:
    spec = pod_spec(obj)
    if spec is None:
        return []
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def pod_spec(obj: Manifest) -> dict[str, Any] | None:
    """The pod spec of a workload (Deployment, Job, ...), or None."""
    template = obj.get("spec", {}).get("template")
    if not isinstance(template, dict):
        return None
    spec: dict[str, Any] = template["spec"]
    return spec


def _image_name(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name[: len(name) - len(last)] + last.split(":", 1)[0]


def differences(rendered: list[Manifest], other: list[Manifest]) -> list[str]:
    """The objects (kind/name) that differ between two renderings, whatever their order.

    Secret data compare decoded: kubectl wraps long base64 values over several lines.
    """

    def keyed(objects: list[Manifest]) -> dict[tuple[str, str], Manifest]:
        out = {}
        for obj in objects:
            obj = copy.deepcopy(obj)
            if obj["kind"] == "Secret":
                obj["data"] = {
                    k: base64.b64decode("".join(v.split())) for k, v in obj.get("data", {}).items()
                }
            out[(obj["kind"], obj["metadata"]["name"])] = obj
        return out

    mine, theirs = keyed(rendered), keyed(other)
    return [
        f"{kind}/{name}"
        for kind, name in sorted(mine.keys() | theirs.keys())
        if mine.get((kind, name)) != theirs.get((kind, name))
    ]


def main(argv: list[str]) -> int:
    """`python -m tests.ops.kustomize DIR`: print the rendering; with `--compare FILE`, exit
    1 (naming the objects) when FILE (e.g. kubectl kustomize's output) renders otherwise."""
    rendered = render(Path(argv[0]))
    if len(argv) == 3 and argv[1] == "--compare":
        other = [doc for doc in yaml.safe_load_all(Path(argv[2]).read_text()) if doc]
        diff = differences(rendered, other)
        for name in diff:
            print(f"differs: {name}", file=sys.stderr)  # noqa: T201
        return 1 if diff else 0
    yaml.safe_dump_all(rendered, sys.stdout, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
