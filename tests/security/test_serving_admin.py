"""The prediction server's public listener changes nothing: uploads and deletes exist only
on the admin listener, which is off unless asked for, binds 127.0.0.1 by default and takes
only its token. A package is code: the hostile package here runs a shell command when
loaded, and the marker file it would create shows whether it ever was."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx
import pytest
from tests.security.conftest import hostile_package
from typer.testing import CliRunner

from deckhand import deployment_dirs
from deckhand.cli.app import build_app
from deckhand.packages.demo import sample_rows
from deckhand.serving.testing import ServeProcess
from deckhand.testing import free_port, peak_rss_mib, reset_peak_rss, rss_mib, wait_until

pytestmark = pytest.mark.slow


def _models_dir_with_one_deployment(tmp_path: Path, package: Path) -> Path:
    models = tmp_path / "models"
    models.mkdir()
    deployment_dirs.install(models, "keep", "keep", "m-1", package)
    return models


def _ready(server: ServeProcess, ref: str) -> bool:
    return httpx.get(f"{server.url}/deployments/{ref}/info").json().get("state") == "ready"


def test_public_listener_refuses_uploads_and_deletes(tmp_path: Path, demo_package: Path) -> None:
    marker = tmp_path / "the-pickle-ran"
    hostile = hostile_package(demo_package, tmp_path / "hostile.dhpkg", marker)
    models = _models_dir_with_one_deployment(tmp_path, demo_package)
    with ServeProcess(["--models-dir", str(models)], tmp_path / "serve.log") as server:
        server.wait_ready()
        wait_until(lambda: _ready(server, "keep"), 30, what="the deployment loaded")

        upload = httpx.post(f"{server.url}/deployments/evil", content=hostile.read_bytes())
        assert upload.status_code == 405, upload.text
        assert upload.headers["allow"] == "GET" and "--admin-port" in upload.json()["message"]
        delete = httpx.delete(f"{server.url}/deployments/keep")
        assert delete.status_code == 405, delete.text

        time.sleep(1.0)  # more than the models dir's poll period: a written package would be loading now
        assert not marker.exists(), "the hostile package's pickle ran"
        assert sorted(p.name for p in models.iterdir()) == ["keep"]
        answer = httpx.post(f"{server.url}/deployments/keep/predictions", json=sample_rows(1))
        assert answer.status_code == 200, answer.text


def test_admin_listener_takes_only_its_token(tmp_path: Path, demo_package: Path) -> None:
    marker = tmp_path / "the-pickle-ran"
    hostile = hostile_package(demo_package, tmp_path / "hostile.dhpkg", marker)
    models = _models_dir_with_one_deployment(tmp_path, demo_package)
    token = secrets.token_urlsafe(32)
    (tmp_path / "admin-token").write_text(token + "\n")
    admin_port = free_port()
    args = ["--models-dir", str(models), "--admin-port", str(admin_port)]
    args += ["--admin-token-file", str(tmp_path / "admin-token")]
    with ServeProcess(args, tmp_path / "serve.log") as server:
        server.wait_ready()
        assert f"uploads and deletes on 127.0.0.1:{admin_port} (token required)" in server.output()
        admin = f"http://127.0.0.1:{admin_port}"
        for headers in ({}, {"authorization": "Bearer " + secrets.token_urlsafe(32)}, {"authorization": token}):
            refused = httpx.post(f"{admin}/deployments/evil", content=hostile.read_bytes(), headers=headers)
            assert refused.status_code == 401, refused.text
            assert refused.headers["www-authenticate"] == "Bearer"
            assert httpx.delete(f"{admin}/deployments/keep", headers=headers).status_code == 401
            assert httpx.get(f"{admin}/deployments", headers=headers).status_code == 401
        # the public listener still refuses, token or not
        auth = {"authorization": f"Bearer {token}"}
        assert httpx.post(f"{server.url}/deployments/evil", content=b"x", headers=auth).status_code == 405
        time.sleep(1.0)  # nothing must happen: more than the models dir's poll period
        assert not marker.exists(), "the hostile package's pickle ran"

        # with the token, the admin listener does its job
        created = httpx.post(f"{admin}/deployments/second", content=demo_package.read_bytes(), headers=auth)
        assert created.status_code == 201, created.text
        assert httpx.post(f"{server.url}/deployments/second/predictions", json=sample_rows(1)).status_code == 200
        assert httpx.delete(f"{admin}/deployments/keep", headers=auth).status_code == 200
        assert not (models / "keep").exists()


@pytest.mark.parametrize(
    ("extra", "env", "message"),
    [
        ([], {}, "--admin-port needs a token: --admin-token-file FILE or $DECKHAND_SERVE_ADMIN_TOKEN"),
        ([], {"DECKHAND_SERVE_ADMIN_TOKEN": "short"}, "the admin token has 5 characters, fewer than 24"),
    ],
)
def test_admin_listener_needs_a_real_token(tmp_path: Path, extra: list[str], env: dict[str, str], message: str) -> None:
    result = CliRunner().invoke(
        build_app(),
        ["serve", "--models-dir", str(tmp_path), "--admin-port", "0", *extra],
        env={"DECKHAND_SERVE_ADMIN_TOKEN": "", **env},
    )
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_admin_upload_of_a_bomb_is_refused_in_bounded_memory(tmp_path: Path, demo_package: Path, bomb: Path) -> None:
    """A 1 MB package that inflates to 1 GiB: a 400 naming the limit, and the server's
    peak memory stays within 100 MB of its idle memory (the old reader held gigabytes)."""
    models = _models_dir_with_one_deployment(tmp_path, demo_package)
    token = secrets.token_urlsafe(32)
    admin_port = free_port()
    args = ["--models-dir", str(models), "--admin-port", str(admin_port)]
    with ServeProcess(args, tmp_path / "serve.log", {"DECKHAND_SERVE_ADMIN_TOKEN": token}) as server:
        server.wait_ready()
        admin, auth = f"http://127.0.0.1:{admin_port}", {"authorization": f"Bearer {token}"}
        warm = httpx.post(f"{admin}/deployments/warm", content=demo_package.read_bytes(), headers=auth, timeout=60)
        assert warm.status_code == 201, warm.text  # imports and first load done: what idle means
        idle = rss_mib(server.pid)
        reset_peak_rss(server.pid)
        started = time.monotonic()
        refused = httpx.post(f"{admin}/deployments/bomb", content=bomb.read_bytes(), headers=auth, timeout=60)
        seconds = time.monotonic() - started
        peak = peak_rss_mib(server.pid)
        print(
            f"\nbomb upload to deckhand serve: {refused.status_code} in {seconds:.2f} s, idle {idle:.0f} MiB, "
            f"peak {peak:.0f} MiB (+{peak - idle:.1f})"
        )
        assert refused.status_code == 400, refused.text
        assert "--max-package-ratio" in refused.json()["message"]
        assert peak - idle < 100, f"peak {peak:.0f} MiB vs idle {idle:.0f} MiB"
        assert seconds < 5
        assert not (models / "bomb").exists()
