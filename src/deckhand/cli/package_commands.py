"""`deckhand package build|inspect|demo`: make and look at model packages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deckhand.cli import package_limit_options as pkg
from deckhand.cli.output import Output, fail
from deckhand.package_limits import PackageLimits

app = typer.Typer(name="package", help="Build and inspect model packages (.dhpkg).", no_args_is_help=True)


@app.command("build")
def build(
    source: Annotated[Path, typer.Argument(help="Model file or directory to package.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="sklearn | onnx | mlflow | python")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Package file to write.")],
    target_type: Annotated[
        str | None,
        typer.Option(help="regression | binary | multiclass (inferred when possible)."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Package name (default: file stem).")] = None,
    class_labels: Annotated[
        str | None,
        typer.Option(help="Comma-separated class labels; for binary: NEGATIVE,POSITIVE."),
    ] = None,
    training_data: Annotated[
        Path | None,
        typer.Option(help="Training CSV: names/types features and stores the drift baseline."),
    ] = None,
) -> None:
    """Package a model into one verified file."""
    from deckhand.packages import PackageError, build_package

    labels = [s.strip() for s in class_labels.split(",")] if class_labels else None
    try:
        manifest = build_package(
            source,
            fmt,
            output,
            target_type=target_type,
            name=name,
            training_data=training_data,
            class_labels=labels,
        )
    except PackageError as exc:
        fail(str(exc))
    typer.echo(
        f"wrote {output} ({manifest.format}, {manifest.target_type}, "
        f"{len(manifest.features)} features, payload sha256 {manifest.payload_sha256[:12]})"
    )


@app.command("inspect", epilog=pkg.ENV_HELP)
def inspect(
    path: Annotated[Path, typer.Argument(help="Package file.")],
    output: Annotated[Output, typer.Option("--output", help="table or json.")] = Output.table,
    max_package_uncompressed_mb: pkg.MaxPackageUncompressedMb = pkg.MAX_PACKAGE_UNCOMPRESSED_MB,
    max_package_ratio: pkg.MaxPackageRatio = pkg.MAX_PACKAGE_RATIO,
    max_package_members: pkg.MaxPackageMembers = pkg.MAX_PACKAGE_MEMBERS,
) -> None:
    """Verify a package (names, size limits, checksums) and print its manifest; for a mix
    (a deployment's champion, canary and challengers), verify every member and list them."""
    from deckhand.packages import PackageError, file_sha256, read_manifest
    from deckhand.packages.mix import is_mix

    limits = pkg.package_limits(max_package_uncompressed_mb, max_package_ratio, max_package_members)
    if is_mix(path):
        _inspect_mix(path, output, limits)
        return
    try:
        manifest = read_manifest(path, limits)
    except PackageError as exc:
        fail(str(exc))
    if output is Output.json:
        typer.echo(manifest.model_dump_json(indent=2))
        return
    rows = [
        ("name", manifest.name),
        ("format", manifest.format),
        ("target type", manifest.target_type),
        ("class labels", ", ".join(manifest.class_labels or []) or "-"),
        (
            "features",
            ", ".join(f"{f.name}:{f.type}" for f in manifest.features[:12])
            + (" ..." if len(manifest.features) > 12 else ""),
        ),
        ("libraries", ", ".join(f"{k} {v}" for k, v in manifest.library_versions.items())),
        ("created", manifest.created_at.isoformat()),
        ("payload sha256", manifest.payload_sha256),
        ("file sha256", file_sha256(path)),
        ("training summary", f"{manifest.training_summary.rows} rows" if manifest.training_summary else "none"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"{key:<{width}}  {value}")


def _inspect_mix(path: Path, output: Output, limits: PackageLimits) -> None:
    """Check a mix and each member package (extracted to a temporary directory) and list them."""
    import json
    import tempfile

    from deckhand.packages import PackageError, read_manifest
    from deckhand.packages.mix import extract_members, read_mix

    try:
        mix = read_mix(path, limits)
        with tempfile.TemporaryDirectory(prefix="deckhand-mix-") as tmp:
            paths = extract_members(mix, Path(tmp))
            manifests = {model_id: read_manifest(member, limits) for model_id, member in paths.items()}
    except PackageError as exc:
        fail(str(exc))
    members = [
        {"modelId": m.model_id, "role": m.role, "percent": m.percent, "sha256": m.sha256,
         "name": manifests[m.model_id].name, "format": manifests[m.model_id].format,
         "targetType": manifests[m.model_id].target_type}
        for m in mix.members
    ]  # fmt: skip
    if output is Output.json:
        typer.echo(
            json.dumps({"servedModelId": mix.served_model_id, "members": members, "sticky": mix.sticky}, indent=2)
        )
        return
    typer.echo(f"mix {mix.served_model_id}  sticky: {json.dumps(mix.sticky)}")
    for m in members:
        typer.echo(
            f"  {m['role']:<10} {m['percent']:>3}%  {m['modelId']}  {m['name']} ({m['format']}, {m['targetType']})"
        )


@app.command("demo")
def demo_package(
    output: Annotated[Path, typer.Option("--output", "-o")] = Path("demo.dhpkg"),
    task: Annotated[str, typer.Option(help="multiclass (iris) | binary | regression")] = "multiclass",
    seed: int = 0,
) -> None:
    """Train a small demo model on data shipped with scikit-learn and package it."""
    from deckhand.packages.demo import train_demo_package

    manifest = train_demo_package(output, seed=seed, task=task)  # type: ignore[arg-type]
    typer.echo(f"wrote {output} ({manifest.name}: {', '.join(manifest.feature_names)})")
