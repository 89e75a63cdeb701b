"""infra/kind/kind-config.yaml: 1 control plane + 2 workers on one pinned node image, API on loopback."""

from __future__ import annotations

import re

from tests.infra.manifests import KIND_CONFIG, KUBE_VERSIONS, load_docs

(CONFIG,) = load_docs(KIND_CONFIG)
_NODE_IMAGE = re.compile(r"^kindest/node:v(\d+\.\d+)\.\d+@sha256:[0-9a-f]{64}$")


def test_kind_cluster_shape():
    assert CONFIG["kind"] == "Cluster" and CONFIG["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    roles = sorted(node["role"] for node in CONFIG["nodes"])
    assert roles == ["control-plane", "worker", "worker"]
    assert CONFIG["networking"]["apiServerAddress"] == "127.0.0.1"


def test_node_images_pinned_by_tag_and_digest():
    images = {node["image"] for node in CONFIG["nodes"]}
    assert len(images) == 1, f"all nodes run one Kubernetes version: {images}"
    match = _NODE_IMAGE.match(images.pop())
    assert match, "kindest/node images must be pinned by version tag and digest"
    assert match.group(1) in KUBE_VERSIONS, "the manifests are validated against the kind cluster's version"
