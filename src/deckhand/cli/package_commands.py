"""`deckhand package build|inspect|demo`: make and look at model packages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deckhand.cli import package_limit_options as pkg
from deckhand.cli.output import Output, fail

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
    """Verify a package (names, size limits, checksums) and print its manifest."""
    from deckhand.packages import PackageError, file_sha256, read_manifest

    limits = pkg.package_limits(max_package_uncompressed_mb, max_package_ratio, max_package_members)
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
