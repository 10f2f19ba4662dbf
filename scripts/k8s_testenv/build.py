"""Build the environment's Go tools once, through the Go module proxy, cached by version.

Every tool is built from a small *wrapper module* written here (never vendored): it
requires the upstream module and, where upstream relies on ``replace`` directives (which
``go install`` refuses), repeats them. For k8s.io/kubernetes each
``k8s.io/X => ./staging/src/k8s.io/X`` becomes ``k8s.io/X => k8s.io/X v0.<minor>.<patch>``.

Binaries land in ``$DECKHAND_CACHE_DIR/tools/<name>-<version>/``; a ``.complete`` stamp
marks a finished build, so a rerun costs nothing. GOMODCACHE and GOCACHE live under
``$DECKHAND_CACHE_DIR/go`` so a rebuild after a version bump is incremental.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import paths, versions

GO_CANDIDATES = ("go", "/usr/local/go/bin/go", "/usr/lib/go/bin/go")


@dataclass(frozen=True)
class GoTool:
    """One cached build: a wrapper module requiring ``module@version``."""

    name: str
    module: str
    version: str
    packages: tuple[str, ...]
    # output file name -> package, for packages whose last element is not the binary name
    renames: dict[str, str] = field(default_factory=dict)
    copy_replaces: bool = False  # repeat upstream's module-to-module replace directives
    staging_replaces: bool = False  # k8s.io/kubernetes: staging dirs -> published v0.x
    ldflags: str = "-s -w"

    @property
    def dir(self) -> Path:
        return paths.tools_dir() / f"{self.name}-{self.version}"

    def bin(self, binary: str) -> Path:
        return self.dir / binary

    @property
    def complete(self) -> bool:
        return (self.dir / ".complete").exists()


def _k8s_ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return " ".join(flags)


K8S_CMDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")

KUBERNETES = GoTool(
    name="kubernetes",
    module="k8s.io/kubernetes",
    version=versions.KUBERNETES,
    packages=tuple(f"k8s.io/kubernetes/cmd/{c}" for c in K8S_CMDS),
    staging_replaces=True,
    ldflags=_k8s_ldflags(versions.KUBERNETES),
)
ETCD = GoTool(
    name="etcd",
    module="go.etcd.io/etcd/server/v3",
    version=versions.ETCD,
    packages=(),
    renames={"etcd": "go.etcd.io/etcd/server/v3"},
)
HELM = GoTool(
    name="helm",
    module="helm.sh/helm/v3",
    version=versions.HELM,
    packages=("helm.sh/helm/v3/cmd/helm",),
    ldflags=f"-s -w -X helm.sh/helm/v3/internal/version.version={versions.HELM}",
)
KWOK = GoTool(
    name="kwok",
    module="sigs.k8s.io/kwok",
    version=versions.KWOK,
    packages=("sigs.k8s.io/kwok/cmd/kwok", "sigs.k8s.io/kwok/cmd/kwokctl"),
)
TRAEFIK = GoTool(
    name="traefik",
    module="github.com/traefik/traefik/v3",
    version=versions.TRAEFIK,
    packages=(),
    renames={"traefik": "github.com/traefik/traefik/v3/cmd/traefik"},
    copy_replaces=True,
    ldflags=f"-s -w -X github.com/traefik/traefik/v3/pkg/version.Version={versions.TRAEFIK}",
)

KANIKO = GoTool(
    name="kaniko",
    module="github.com/GoogleContainerTools/kaniko",
    version=versions.KANIKO,
    packages=(),
    renames={"executor": "github.com/GoogleContainerTools/kaniko/cmd/executor"},
    ldflags=f"-s -w -X github.com/GoogleContainerTools/kaniko/pkg/version.version={versions.KANIKO}",
)

# `weed`: its S3 gateway is the object store of tests/s3_fixtures.py (not Kubernetes, but
# built and cached the same way).
SEAWEEDFS = GoTool(
    name="seaweedfs",
    module="github.com/seaweedfs/seaweedfs",
    version=versions.SEAWEEDFS,
    packages=("github.com/seaweedfs/seaweedfs/weed",),
    copy_replaces=True,
)

ALL_TOOLS = (KUBERNETES, ETCD, HELM, TRAEFIK, KWOK, KANIKO, SEAWEEDFS)
TOOLS_BY_NAME = {t.name: t for t in ALL_TOOLS}


class BuildError(RuntimeError):
    pass


def find_go() -> str:
    for cand in GO_CANDIDATES:
        path = shutil.which(cand)
        if path:
            return path
    raise BuildError("no Go toolchain found (looked for go, /usr/local/go/bin/go)")


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GOMODCACHE=str(paths.go_dir() / "mod"),
        GOCACHE=str(paths.go_dir() / "build"),
        GOFLAGS="-buildvcs=false -mod=mod",
        GOTOOLCHAIN="local",
        CGO_ENABLED="0",
    )
    return env


def _run(cmd: list[str], cwd: Path, log) -> str:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    proc = subprocess.run(cmd, cwd=cwd, env=go_env(), stdout=subprocess.PIPE, stderr=log, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd[:3])} failed (exit {proc.returncode}); see {log.name}")
    return proc.stdout


_REPLACE_LINE = re.compile(r"^\s*(\S+)(?:\s+(\S+))?\s+=>\s+(\S+)(?:\s+(\S+))?\s*$")


def upstream_replaces(gomod: str) -> list[tuple[str, str, str | None]]:
    """(old path, new path, new version or None) for each replace in a go.mod text."""
    out: list[tuple[str, str, str | None]] = []
    in_block = False
    for raw in gomod.splitlines():
        line = raw.split("//")[0].rstrip()
        if line.startswith("replace ("):
            in_block = True
            continue
        if in_block and line.strip() == ")":
            in_block = False
            continue
        body = line[len("replace ") :] if line.startswith("replace ") else (line if in_block else "")
        m = _REPLACE_LINE.match(body) if body else None
        if m:
            out.append((m.group(1), m.group(3), m.group(4)))
    return out


def wrapper_gomod(tool: GoTool, upstream_gomod: str) -> str:
    lines = ["module deckhand.local/build/" + tool.name, "", "go 1.24.0", ""]
    lines.append(f"require {tool.module} {tool.version}")
    replaces = []
    for old, new, new_version in upstream_replaces(upstream_gomod):
        if new.startswith("./staging/src/") and tool.staging_replaces:
            minor_patch = tool.version.lstrip("v").split(".", 1)[1]
            replaces.append(f"\t{old} => {old} v0.{minor_patch}")
        elif tool.copy_replaces and new_version:
            replaces.append(f"\t{old} => {new} {new_version}")
    if replaces:
        lines += ["", "replace ("] + replaces + [")"]
    return "\n".join(lines) + "\n"


def build(tool: GoTool, *, force: bool = False, quiet: bool = False) -> Path:
    """Build ``tool`` unless already cached; return its directory.

    A lock file serialises concurrent builders of the same tool (two test runs at once).
    """
    if tool.complete and not force:
        return tool.dir
    paths.tools_dir().mkdir(parents=True, exist_ok=True)
    with open(paths.tools_dir() / f".{tool.name}-{tool.version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tool.complete and not force:
            return tool.dir
        return _build_locked(tool, quiet=quiet)


def _build_locked(tool: GoTool, *, quiet: bool) -> Path:
    go = find_go()
    work = paths.go_dir() / "wrappers" / f"{tool.name}-{tool.version}"
    work.mkdir(parents=True, exist_ok=True)
    tool.dir.mkdir(parents=True, exist_ok=True)
    log_path = tool.dir / "build.log"
    start = time.monotonic()
    if not quiet:
        print(f"building {tool.name} {tool.version} (log: {log_path})", flush=True)
    with open(log_path, "w") as log:
        info = json.loads(_run([go, "mod", "download", "-json", f"{tool.module}@{tool.version}"], work, log))
        if info.get("Error"):
            raise BuildError(f"{tool.module}@{tool.version}: {info['Error']}")
        (work / "go.mod").write_text(wrapper_gomod(tool, Path(info["GoMod"]).read_text()))
        (work / "go.sum").unlink(missing_ok=True)
        (work / "tools.go").write_text("package tools\n")
        base = [go, "build", "-trimpath", "-ldflags", tool.ldflags]
        if tool.packages:
            _run(base + ["-o", str(tool.dir) + "/", *tool.packages], work, log)
        for binary, pkg in tool.renames.items():
            _run(base + ["-o", str(tool.dir / binary), pkg], work, log)
    (tool.dir / ".complete").write_text(f"{time.monotonic() - start:.0f}s\n")
    if not quiet:
        print(f"built {tool.name} {tool.version} in {time.monotonic() - start:.0f} s", flush=True)
    return tool.dir


def build_all(names: list[str] | None = None, *, force: bool = False) -> None:
    selected = [TOOLS_BY_NAME[n] for n in names] if names else list(ALL_TOOLS)
    for tool in selected:
        build(tool, force=force)


if __name__ == "__main__":  # pragma: no cover - convenience: python -m k8s_testenv.build
    build_all(sys.argv[1:] or None)
