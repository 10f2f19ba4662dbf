"""Container images without a Docker engine: static Go binaries packed as OCI images.

``testimages/`` holds two tiny Go programs (the pod sandbox ``pause`` and an HTTP
``echo`` server). They are built once (cached by a hash of their sources), packed into
a one-layer OCI image in memory, then either imported into containerd (``ctr images
import``) or pushed to the local registry with the plain distribution HTTP API.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import build, paths

SOURCES = Path(__file__).parent / "testimages"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}


@dataclass(frozen=True)
class Image:
    config: Blob
    layer: Blob
    manifest: Blob


def test_binary(name: str) -> Path:
    """Build ``testimages/<name>`` statically (cached by source hash); return the binary."""
    digest = hashlib.sha256()
    for src in sorted(SOURCES.rglob("*")):
        if src.is_file():
            digest.update(src.relative_to(SOURCES).as_posix().encode() + src.read_bytes())
    out = paths.tools_dir() / f"testimages-{digest.hexdigest()[:12]}" / name
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [build.find_go(), "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out), f"./{name}"]
        proc = subprocess.run(cmd, cwd=SOURCES, env=build.go_env(), capture_output=True, text=True)
        if proc.returncode != 0:
            raise build.BuildError(f"building test image binary {name}: {proc.stderr.strip()}")
    return out


def binary_image(binary: Path, *, env: dict[str, str] | None = None, port: int | None = None) -> Image:
    """A one-layer image holding ``/<binary name>`` as its entrypoint."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("tmp", "etc"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        data = binary.read_bytes()
        info = tarfile.TarInfo(binary.name)
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    layer = Blob(OCI_LAYER, gzip.compress(raw.getvalue(), mtime=0))
    cfg: dict = {"Entrypoint": [f"/{binary.name}"], "Env": [f"{k}={v}" for k, v in (env or {}).items()]}
    if port:
        cfg["ExposedPorts"] = {f"{port}/tcp": {}}
    config = Blob(
        OCI_CONFIG,
        json.dumps(
            {"architecture": "amd64", "os": "linux", "config": cfg,
             "rootfs": {"type": "layers", "diff_ids": [diff_id]}}, sort_keys=True
        ).encode(),
    )  # fmt: skip
    manifest = Blob(
        OCI_MANIFEST,
        json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(),
             "layers": [layer.descriptor()]}, sort_keys=True
        ).encode(),
    )  # fmt: skip
    return Image(config, layer, manifest)


def oci_archive(image: Image, ref: str) -> bytes:
    """An OCI image-layout tar that ``ctr images import`` names ``ref``."""
    tag = ref.rsplit(":", 1)[1]
    index = {
        "schemaVersion": 2,
        "manifests": [
            image.manifest.descriptor()
            | {"annotations": {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": tag}}
        ],
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        files = {"oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
                 "index.json": json.dumps(index).encode()}  # fmt: skip
        for blob in (image.config, image.layer, image.manifest):
            files["blobs/sha256/" + blob.digest.split(":")[1]] = blob.data
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def import_into_containerd(image: Image, ref: str, *, address: Path, archive_dir: Path) -> None:
    archive_dir.mkdir(parents=True, exist_ok=True)
    path = archive_dir / (ref.replace("/", "_").replace(":", "_") + ".tar")
    path.write_bytes(oci_archive(image, ref))
    cmd = ["ctr", "--address", str(address), "-n", "k8s.io", "images", "import", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ctr images import {ref} failed: {proc.stderr.strip()}")


def push(image: Image, registry: str, repository: str, tag: str) -> str:
    """Push to ``http://<registry>`` with the distribution API; return ``registry/repo:tag``."""
    base = f"http://{registry}/v2/{repository}"
    for blob in (image.layer, image.config):
        head = urllib.request.Request(f"{base}/blobs/{blob.digest}", method="HEAD")
        try:
            urllib.request.urlopen(head, timeout=30).close()
            continue  # already there
        except urllib.error.HTTPError as err:
            if err.code != 404:
                raise
        with urllib.request.urlopen(urllib.request.Request(f"{base}/blobs/uploads/", method="POST"), timeout=30) as r:
            location = r.headers["Location"]
        if location.startswith("/"):
            location = f"http://{registry}{location}"
        sep = "&" if "?" in location else "?"
        put = urllib.request.Request(
            f"{location}{sep}digest={blob.digest}", data=blob.data, method="PUT",
            headers={"Content-Type": "application/octet-stream"},
        )  # fmt: skip
        urllib.request.urlopen(put, timeout=60).close()
    put = urllib.request.Request(
        f"{base}/manifests/{tag}", data=image.manifest.data, method="PUT",
        headers={"Content-Type": OCI_MANIFEST},
    )  # fmt: skip
    urllib.request.urlopen(put, timeout=30).close()
    return f"{registry}/{repository}:{tag}"
