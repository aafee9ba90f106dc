"""Schemathesis against a live `featurestore serve`: no input gives a server error.

The service's own OpenAPI schema drives the requests; every path parameter is drawn from a
strategy mixing the names an attacker or a careless user types (``..``, ``%2e%2e``, NUL bytes,
300-character names, backslashes) with the store's real names, so the fuzzer reaches the code
behind valid prefixes too (``/entries/<real ckpt>/<hostile dataset>``).
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from featurestore_app.service import create_app
from tests.app.test_service import FAST_CKPT, build_served_store, live_server

schemathesis = pytest.importorskip("schemathesis")
st = pytest.importorskip("hypothesis.strategies")
hypothesis = pytest.importorskip("hypothesis")

HOSTILE = [
    "..", ".", "%2e%2e", "%2E%2E", "..%2f..%2fetc%2fpasswd", "../../../../etc/passwd",
    "..\\..\\windows", "a\x00b", "\x00", "\x00.npy", "x" * 300, "y" * 256, "_results",
    "zarr.json", "c", "~", " ", "%00", "\n", "\u202e", "?", "#",
]
REAL = [FAST_CKPT, "imagefolder", "train", "val", "test", "trainval", "features", "labels"]


def hostile_names() -> Any:
    """One path segment: hostile, real, or arbitrary text up to past the file-name limit."""
    return st.one_of(st.sampled_from(HOSTILE), st.sampled_from(REAL),
                     st.text(max_size=20), st.text(min_size=250, max_size=320))


def hostile_keys() -> Any:
    """A Zarr key (slashes allowed): real keys, traversal, and names joined by ``/``."""
    real = ["zarr.json", f"{FAST_CKPT}/zarr.json", f"{FAST_CKPT}/imagefolder/test/ids/zarr.json",
            "_results", "_results/zarr.json"]
    joined = st.lists(hostile_names(), min_size=1, max_size=4).map("/".join)
    return st.one_of(st.sampled_from(real), joined)


def hostile_schema(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with every path parameter drawn from the hostile formats."""
    for ops in spec["paths"].values():
        for op in ops.values():
            for p in op.get("parameters", []):
                if p["in"] == "path":
                    fmt = "fs-key" if p["name"] == "key" else "fs-name"
                    p["schema"] = {"type": "string", "format": fmt}
    return spec


def server_errors(base: str, max_examples: int) -> list[str]:
    """Run schemathesis over every operation of the service at ``base``; the 5xx answers."""
    schemathesis.openapi.format("fs-name", hostile_names())
    schemathesis.openapi.format("fs-key", hostile_keys())
    with urllib.request.urlopen(f"{base}/openapi.json") as r:
        spec = hostile_schema(json.loads(r.read()))
    schema = schemathesis.openapi.from_dict(spec)
    errors: list[str] = []
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @hypothesis.settings(max_examples=max_examples, deadline=None, database=None,
                             derandomize=True, phases=[hypothesis.Phase.generate],
                             suppress_health_check=list(hypothesis.HealthCheck))
        @hypothesis.given(case=operation.as_strategy())
        def run(case: Any) -> None:
            nonlocal tried
            tried += 1
            response = case.call(base_url=base, timeout=30)
            if response.status_code >= 500:
                errors.append(f"{response.status_code} {case.method} {case.formatted_path} "
                              f"{case.path_parameters} {case.query}")
            elif response.status_code >= 400:
                assert "detail" in json.loads(response.content), case.formatted_path

        run()
    assert tried >= max_examples  # the fuzzer really ran
    return errors


def test_no_server_error_on_any_input(tmp_path: Path) -> None:
    with live_server(create_app(build_served_store(tmp_path))) as base:
        errors = server_errors(base, max_examples=30)
    assert errors == [], "\n".join(errors[:20])
