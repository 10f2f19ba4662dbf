"""The control plane's HTTP API fuzzed against its own OpenAPI document (schemathesis).

Every operation gets generated requests (the examples, coverage and fuzzing phases; valid
and invalid data), once with an admin token and once with a read-only token, in-process
through ASGI. Every response must be: no 5xx, a documented status code and content type,
a body that matches the documented schema, and a refusal of invalid data. With the
read-only token every write must answer 403.

The database is seeded so that path parameters name real objects part of the time: an
environment, a package built by `train_demo_package`, a deployment, a spare token, and a
deployment name shared by two environments (an ambiguous name: 409). What a fuzzed DELETE
or PATCH removes or renames is restored.

Generation is derandomized (Hypothesis `derandomize=True`, no example database): the same
code replays the same requests, so a failure replays with the same command, and a
failure's report carries `@reproduce_failure` and a curl command.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from deckhand.server.app import create_app, openapi_document
from deckhand.server.services.tokens import BOOTSTRAP_TOKEN_NAME
from deckhand.server.settings import ServerSettings

pytestmark = pytest.mark.slow

ADMIN = "dh_fuzz-admin-token-0123456789abcdef"
# Examples per operation and phase, for each of the two tokens (about 30 operations);
# DECKHAND_FUZZ_EXAMPLES=1000 digs deeper locally.
MAX_EXAMPLES = int(os.environ.get("DECKHAND_FUZZ_EXAMPLES", "100"))
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
AMBIGUOUS_NAME = "twin"

schema = schemathesis.openapi.from_dict(openapi_document())
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.negative_data_rejection,
]
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)


@dataclass
class World:
    """Seeded objects that the fuzzer's path parameters name part of the time."""

    api: TestClient
    package_bytes: bytes
    ids: dict[str, str] = field(default_factory=dict)

    def ok(self, response: Any) -> Any:
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def _exists(self, url: str) -> bool:
        return self.api.get(url).status_code == 200

    def restore(self) -> None:
        """(Re)create whatever is missing; read names again (a fuzzed PATCH renames)."""
        if "package" not in self.ids or not self._exists(f"/api/v1/model-packages/{self.ids['package']}"):
            octet = {"Content-Type": "application/octet-stream"}
            self.ids["package"] = self.ok(
                self.api.post("/api/v1/model-packages", content=self.package_bytes, headers=octet)
            )["id"]
        for key in ("env", "other_env"):
            if key not in self.ids or not self._exists(f"/api/v1/environments/{self.ids[key]}"):
                body = {"name": f"fuzz-{key}-{time.time_ns()}", "platform": "test"}
                self.ids[key] = self.ok(self.api.post("/api/v1/environments", json=body))["id"]
        self.ids["env_name"] = self.ok(self.api.get(f"/api/v1/environments/{self.ids['env']}"))["name"]
        for key, env, name in (
            ("deployment", "env", "fuzz-deployment"),
            ("twin_a", "env", AMBIGUOUS_NAME),
            ("twin_b", "other_env", AMBIGUOUS_NAME),
        ):
            if key not in self.ids or not self._exists(f"/api/v1/deployments/{self.ids[key]}"):
                body = {"name": name, "environmentId": self.ids[env], "modelPackageId": self.ids["package"]}
                self.ids[key] = self.ok(self.api.post("/api/v1/deployments", json=body))["id"]
        tokens = {t["name"]: t["id"] for t in self.ok(self.api.get("/api/v1/tokens"))}
        if "fuzz-spare" not in tokens:
            spare = self.ok(self.api.post("/api/v1/tokens", json={"name": "fuzz-spare", "role": "read-only"}))
            tokens["fuzz-spare"] = spare["id"]
        self.ids["spare_token"] = tokens["fuzz-spare"]

    def refs_for(self, path: str, parameter: str) -> list[str]:
        """Real values for a path parameter of `path`: ids and names of the seeded objects."""
        if parameter == "package_id":
            return [self.ids["package"]]
        if parameter == "environment_id" or path.startswith("/api/v1/environments/"):
            return [self.ids["env"], self.ids["env_name"], self.ids["other_env"]]
        if path.startswith("/api/v1/tokens/"):
            return [self.ids["spare_token"], "fuzz-spare"]
        return [self.ids["deployment"], "fuzz-deployment", self.ids["twin_a"], AMBIGUOUS_NAME]


@dataclass
class Fuzz:
    app: FastAPI
    world: World
    read_only: str
    # The ids and names of the tokens this test calls with: a fuzzed DELETE may not revoke them.
    own_tokens: set[str] = field(default_factory=set)
    sent: Counter[str] = field(default_factory=Counter)
    # 2xx answers of operations with path parameters: requests that reached a seeded object.
    found: Counter[str] = field(default_factory=Counter)


WORLD: list[World] = []  # the seeded world, once the `fuzz` fixture made it


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: Any) -> Any:
    """Part of the time, a path parameter names a seeded object (read when the case is drawn)."""
    if not isinstance(path_parameters, dict):
        return st.just(path_parameters)
    path: str = context.operation.path
    options: list[st.SearchStrategy[dict[str, Any]]] = [st.just(path_parameters)]
    for name in path_parameters:
        options.append(st.integers(min_value=0, max_value=7).map(_seeded(path, path_parameters, name)))
    return st.one_of(options)


def _seeded(path: str, generated: dict[str, Any], name: str) -> Callable[[int], dict[str, Any]]:
    """`generated` with parameter `name` replaced by the i-th real value (cycling)."""

    def replace(i: int) -> dict[str, Any]:
        values = WORLD[0].refs_for(path, name)
        return {**generated, name: values[i % len(values)]}

    return replace


@pytest.fixture(scope="module")
def fuzz(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, demo_package: Path
) -> Iterator[Fuzz]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    # A long poll on a seeded environment's current revision waits at most 0.2 s.
    config = ServerSettings(
        data_dir=tmp / "data", bootstrap_token=ADMIN, long_poll_max_seconds=0.2, long_poll_recheck_seconds=0.1
    )
    app = create_app(config)
    api = TestClient(app)
    api.headers["Authorization"] = f"Bearer {ADMIN}"
    assert api.get("/openapi.json").json() == openapi_document(), "the fuzzed document is not the one served"
    world = World(api, demo_package.read_bytes())
    world.restore()
    WORLD[:] = [world]
    reader = world.ok(api.post("/api/v1/tokens", json={"name": "fuzz-reader", "role": "read-only"}))["token"]
    mine = (BOOTSTRAP_TOKEN_NAME, "fuzz-reader")
    own = {t["id"]: t["name"] for t in world.ok(api.get("/api/v1/tokens")) if t["name"] in mine}
    state = Fuzz(app, world, reader, own_tokens={*own, *own.values()})
    started = time.monotonic()
    try:
        yield state
    finally:
        from schemathesis.python import asgi

        asgi.shutdown_lifespans()  # the app's lifespan, started by the first fuzzed call
        WORLD.clear()
        counts = [f"{who}: {n} requests, {state.found[who]} found a seeded object" for who, n in state.sent.items()]
        line = (
            f"api fuzz: {'; '.join(counts)}; {time.monotonic() - started:.1f} s; schemathesis "
            f"{schemathesis.__version__}, at most {MAX_EXAMPLES} examples per operation and phase, derandomized"
        )
        capture = request.config.pluginmanager.getplugin("capturemanager")
        if capture is None:
            print(line)
        else:
            with capture.global_and_fixture_disabled():  # what `capsys.disabled()` does
                print(f"\n{line}")


def _call(fuzz: Fuzz, case: Any, token: str, label: str) -> Any:
    if case.operation.path == "/api/v1/tokens/{ref}" and (case.path_parameters or {}).get("ref") in fuzz.own_tokens:
        # The fuzzer learns names from responses; revoking this test's own tokens would end the
        # run (the server allows it while another admin token exists). Revoke the spare instead.
        case.path_parameters["ref"] = "fuzz-spare"
    response = case.call_and_validate(app=fuzz.app, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
    fuzz.sent[label] += 1
    if response.status_code < 300 and "{" in case.operation.path:
        fuzz.found[label] += 1
    if case.method.upper() in ("DELETE", "PATCH") and response.status_code < 300:
        fuzz.world.restore()
    return response


@schema.parametrize()
@FUZZ_SETTINGS
def test_fuzz_as_admin(case: Any, fuzz: Fuzz) -> None:
    _call(fuzz, case, ADMIN, "admin")


@schema.parametrize()
@FUZZ_SETTINGS
def test_fuzz_as_read_only(case: Any, fuzz: Fuzz) -> None:
    response = _call(fuzz, case, fuzz.read_only, "read-only")
    method = case.operation.method.upper()
    if method in WRITE_METHODS and case.method.upper() == method:
        # FastAPI reads the body before it resolves dependencies (auth among them), so a
        # body that is not JSON at all gets its 400 first; any other write is refused.
        unparseable = response.status_code == 400 and response.json()["detail"].startswith("body: not")
        assert response.status_code == 403 or unparseable, (
            f"{method} {case.operation.path}: a read-only token got {response.status_code}, expected 403"
        )
