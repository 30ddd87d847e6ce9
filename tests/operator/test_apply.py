from __future__ import annotations

from trtforge_operator.apply import is_subset, owned_by, three_way_patch


def test_subset_ignores_server_defaults_and_normalizes_quantities() -> None:
    want = {"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": "0.5", "memory": "1Gi"}}}]}}
    have = {
        "spec": {
            "containers": [
                {
                    "name": "a",
                    "imagePullPolicy": "IfNotPresent",
                    "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}},
                }
            ]
        },
        "status": {},
    }
    assert is_subset(want, have)
    assert not is_subset({"spec": {"replicas": 2}}, {"spec": {"replicas": 3}})
    assert not is_subset({"spec": {"x": [1, 2]}}, {"spec": {"x": [1]}})
    assert is_subset({"port": 8080}, {"port": "8080"})
    assert not is_subset({"flag": True}, {"flag": "true"})


def test_three_way_patch_nulls_dropped_fields_but_keeps_owned_ones() -> None:
    previous = {"spec": {"replicas": 2, "template": {"spec": {"nodeSelector": {"a": "b"}, "x": 1}}}}
    desired = {"spec": {"template": {"spec": {"x": 2}}}}
    patch = three_way_patch(previous, desired, keep=[("spec", "replicas")])
    assert patch == {"spec": {"template": {"spec": {"x": 2, "nodeSelector": None}}}}
    assert three_way_patch(None, desired) == desired


def test_owned_by() -> None:
    assert owned_by({"metadata": {"ownerReferences": [{"uid": "u"}]}}, "u")
    assert not owned_by({"metadata": {}}, "u")
