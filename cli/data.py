"""`vjepa-exp data ...` commands: synthesize a benchmark, index a dataset, show an index.

Only typer is imported here at module level; PyAV, numpy and pyarrow load inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cli.errors import friendly

app = typer.Typer(no_args_is_help=True)


def _parse_sets(pairs: list[str]) -> dict:
    """``KEY=VALUE`` overrides; VALUE is read as YAML (``0.1``, ``[0.2, 0.4]``, ``texture``)."""
    import yaml

    from vjepa.errors import UserError

    values = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--set {pair!r}: expected KEY=VALUE")
        values[key.strip()] = yaml.safe_load(raw)
    return values


@app.command()
@friendly
def synth(
    out: Path = typer.Option(..., "--out", help="Output folder."),
    videos: int | None = typer.Option(None, "--videos", help="Number of videos (all splits)."),
    images: int | None = typer.Option(None, "--images", help="Number of still images."),
    seed: int | None = typer.Option(None, "--seed", help="Seed; same seed, same files."),
    resolution: int | None = typer.Option(None, "--resolution", help="Frame side in pixels."),
    frames: int | None = typer.Option(None, "--frames", help="Frames per video."),
    config: Path | None = typer.Option(None, "--config", help="YAML file of SynthConfig fields."),
    set_: list[str] = typer.Option([], "--set", help="Any SynthConfig field: KEY=VALUE (repeat)."),
    workers: int = typer.Option(2, "--workers", help="Worker processes."),
) -> None:
    """Generate the synthetic video benchmark (videos, images, labels, CSVs)."""
    from vjepa.data.synth import SynthConfig, generate
    from vjepa.errors import UserError

    values: dict = {}
    if config is not None:
        from vjepa.stages import load_stage_config

        values.update(load_stage_config(config))
    values.update(_parse_sets(set_))
    flags = {
        "videos": videos,
        "images": images,
        "seed": seed,
        "resolution": resolution,
        "frames": frames,
    }
    values.update({k: v for k, v in flags.items() if v is not None})
    cfg = SynthConfig.from_dict(values, where=str(config) if config else "synth")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: --out exists and is not a folder")
    summary = generate(cfg, out, workers=workers)
    typer.echo(
        f"synth: {summary.videos} videos, {summary.images} images -> {summary.out} "
        f"({summary.seconds:.1f} s)"
    )


@app.command()
@friendly
def index(
    source: Path = typer.Argument(
        ..., help="Synthetic folder, reference CSV, or class-per-folder tree."
    ),
    out: Path = typer.Option(..., "--out", help="Index file to write (Parquet)."),
    workers: int = typer.Option(2, "--workers", help="Worker processes for probing."),
    split: str | None = typer.Option(
        None, "--split", help="Split when the source name gives none."
    ),
) -> None:
    """Probe every file of SOURCE into a Parquet index (bad files become rows with the reason)."""
    from vjepa.data.index import build_index

    summary = build_index(source, out, workers=workers, split=split)
    typer.echo(
        f"index: {summary.rows} rows ({summary.ok} ok, {summary.bad} bad) over {summary.files} files; "
        f"probed {summary.probed}, reused {summary.reused} -> {out}"
    )
    for path, error in summary.bad_files[:20]:
        typer.echo(f"  bad: {path}: {error}")
    if len(summary.bad_files) > 20:
        typer.echo(f"  ... see `vjepa-exp data show {out}`")


@app.command()
@friendly
def show(index: Path = typer.Argument(..., help="Index file (Parquet).")) -> None:
    """Counts per task, split and label, and the bad files of an index."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from vjepa.data.index import index_report

    report = index_report(index)
    console = Console()
    table = Table(title=f"{index} ({report['rows']} rows)")
    for col in ("task", "split", "label", "name", "files"):
        table.add_column(col, justify="right" if col in ("label", "files") else "left")
    for (task, split), labels in sorted(report["counts"].items()):
        for (label, name), n in sorted(labels.items()):
            table.add_row(task, split, str(label), escape(name or ""), str(n))
        table.add_row(task, split, "all", "", str(sum(labels.values())), style="bold")
    console.print(table)
    if report["bad"]:
        bad = Table(title=f"bad files ({len(report['bad'])})")
        bad.add_column("path")
        bad.add_column("error")
        for path, error in sorted(report["bad"].items()):
            bad.add_row(escape(path), escape(error or ""))
        console.print(bad)
    else:
        console.print("no bad files")
