"""Top-level pipeline commands: run, compile, dag, status, results, compare, cancel, exec.

Arguments with ``=`` are Hydra-style overrides (``model=vit_small pretrain.lr=1e-4,3e-4``); the
others are spec files. Heavy libraries (hydra, dvc, polars, rich tables) load inside the bodies.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import typer

from cli.errors import friendly

FORMATS = ("table", "csv", "md", "json")


def _split(args: list[str]) -> tuple[list[Path], list[str]]:
    """Spec files and ``KEY=VALUE`` overrides; a word that is neither is named, not taken for a
    missing spec file."""
    from vjepa.errors import SpecError

    specs = [Path(a) for a in args if "=" not in a]
    for arg, path in zip([a for a in args if "=" not in a], specs, strict=True):
        if arg.startswith(("~", "+")):
            raise SpecError(
                f"override {arg!r}: removing or adding keys is not supported; set a value "
                "(KEY=VALUE) or choose a group option (GROUP=OPTION)"
            )
        if path.suffix not in (".yaml", ".yml") and not path.is_file():
            raise SpecError(f"{arg!r}: neither a spec file (.yaml) nor an override (KEY=VALUE)")
    return specs, [a for a in args if "=" in a]


def _one_spec(args: list[str]) -> tuple[Path, list[str]]:
    from vjepa.errors import UserError

    specs, overrides = _split(args)
    if len(specs) != 1:
        raise UserError(
            f"expected one spec file and KEY=VALUE overrides, got {len(specs)} spec files"
        )
    return specs[0], overrides


RUN_OPTION_HELP = "A run of SPEC (its id or a prefix; `vjepa-exp runs SPEC`); default: the latest."


def _run_spec(args: list[str], run_id: str | None, console: Any) -> tuple[Path, list[str]]:
    """SPEC and the overrides to act with: those given, else the ones its run was started with."""
    from vjepa.pipeline.runs import overrides_for

    spec, overrides = _one_spec(args)
    overrides, run = overrides_for(_root(), spec, overrides, run_id)
    if run is not None and run.overrides:
        console.print(f"run {run.id}: {spec} {' '.join(run.overrides)}", highlight=False)
    return spec, overrides


def _root() -> Path:
    from vjepa.pipeline.dvcio import find_root

    return find_root()


def _console() -> Any:
    from rich.console import Console

    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def _console_to(stream: Any) -> Any:
    from rich.console import Console

    return Console(file=stream, soft_wrap=False, width=200)


def _print_submitted(console: Any, name: str, spec: Path, submitted: dict[str, str]) -> None:
    console.print(f"{name}: submitted {len(submitted)} stages to SLURM", highlight=False)
    for stage, job_id in submitted.items():
        console.print(f"  {job_id}  {stage}", highlight=False)
    console.print(
        f"follow with `vjepa-exp status {spec}`, stop with `vjepa-exp cancel {spec}`",
        highlight=False,
    )


def _print_status(console: Any, root: Path, compiled: Any, rows: list[Any], note: str) -> None:
    from vjepa.pipeline.view import status_view
    from vjepa.pipeline.watch import from_status

    snap = from_status(root, compiled, rows)
    console.print(status_view(root, compiled.spec.name, rows, note, snap))


def _print_evaluation(console: Any, compiled: Any) -> None:
    """Each task's frozen-evaluation path (store or stream) with the store-size estimate."""
    from rich.table import Table

    from vjepa.utils.units import human_bytes

    if not compiled.evaluation:
        return
    table = Table(title="frozen evaluation (eval.features)", title_justify="left")
    for col in ("task", "model", "features", "store estimate", "why"):
        table.add_column(col, overflow="fold")
    for choice in compiled.evaluation:
        sizes = ", ".join(
            f"{s.split} {human_bytes(s.bytes)}" if s.bytes is not None else f"{s.split} ?"
            for s in choice.stores
        )
        colour = "green" if choice.mode == "store" else "cyan"
        table.add_row(choice.task, choice.model, f"[{colour}]{choice.mode}[/]", sizes, choice.why)
    console.print(table)


def _print_results(console: Any, root: Path, compiled: Any, fmt: str = "table") -> None:
    from vjepa.pipeline.results import read_workdir
    from vjepa.report import results, tables

    _, pv = results.pivot_report(compiled.report.config, read_workdir(root))
    if not pv.cells:
        console.print(f"no results yet ({pv.missing} of {pv.total} probes missing)")
        return
    out = tables.render(pv, compiled.spec.name, fmt)
    if isinstance(out, str):
        typer.echo(out, nl=False)
    else:
        console.print(out)


def register(app: typer.Typer) -> None:
    """Add the pipeline commands to the main app."""

    @app.command("run")
    @friendly
    def run_cmd(
        args: list[str] = typer.Argument(..., help="SPEC [KEY=VALUE ...]"),
        jobs: int = typer.Option(
            None, "--jobs", "-j", help="Stages to run at once (default: executor.jobs)."
        ),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="Show what would run; write and run nothing."
        ),
        force: list[str] = typer.Option(
            [], "--force", help="Run this stage (and downstream) even if up to date."
        ),
        force_all: bool = typer.Option(False, "--force-all", help="Run every stage of the spec."),
        keep_going: bool = typer.Option(
            False, "--keep-going", "-k", help="After a failure, run independent stages."
        ),
        no_check_paths: bool = typer.Option(
            False, "--no-check-paths", help="Warn instead of failing on missing files."
        ),
        detach: bool = typer.Option(
            False, "--detach", help="SLURM: submit every stage and exit; follow with status."
        ),
        retry_failed: bool = typer.Option(
            False, "--retry-failed", help="SLURM: resubmit only the failed stages."
        ),
    ) -> None:
        """Compile SPEC, run its stale stages, print the result table."""
        from vjepa.pipeline.runner import RunOptions, run
        from vjepa.pipeline.view import RunView

        spec, overrides = _one_spec(args)
        root, console = _root(), _console()
        started = time.time()
        opts = RunOptions(
            spec,
            overrides,
            jobs,
            dry_run,
            list(force),
            force_all,
            keep_going,
            not no_check_paths,
            detach,
            retry_failed,
        )
        result = run(root, opts, RunView(console))
        name = result.compiled.spec.name
        if opts.dry_run:
            console.print(
                f"{name}: would run {len(result.planned)} of {len(result.compiled.stages)} stages"
            )
            for stage in result.planned:
                console.print(f"  {stage}", highlight=False)
            _print_evaluation(console, result.compiled)
            return
        if opts.detach and result.planned:
            _print_submitted(console, name, spec, result.submitted)
            return
        if not result.planned:
            console.print(
                f"{name}: nothing to do, all {len(result.compiled.stages)} stages are up to date"
            )
        else:
            console.print(
                f"{name}: ran {len(result.ran)} stages in {time.time() - started:.1f}s"
                + (f", {len(result.failed)} failed" if result.failed else "")
                + (f", {len(result.cancelled)} cancelled" if result.cancelled else "")
            )
        if result.interrupted:
            console.print(
                "[yellow]interrupted[/]: stopped running stages and removed their half outputs"
            )
            raise typer.Exit(128 + result.stop_signal)
        _print_results(console, root, result.compiled)
        if not result.ok:
            raise typer.Exit(1)

    @app.command("compile")
    @friendly
    def compile_cmd(
        args: list[str] = typer.Argument(..., help="SPEC [SPEC ...] [KEY=VALUE ...]"),
        prune: bool = typer.Option(
            False, "--prune", help="Drop stages no compiled spec needs any more."
        ),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="Check and list the stages; write nothing."
        ),
        no_check_paths: bool = typer.Option(
            False, "--no-check-paths", help="Warn instead of failing on missing files."
        ),
    ) -> None:
        """Check specs and write dvc.yaml + params.yaml (merged with what is compiled already)."""
        from vjepa.pipeline.compiler import compile_spec
        from vjepa.pipeline.runner import publish

        specs, overrides = _split(args)
        root, console = _root(), _console()
        compiled = [compile_spec(s, overrides, root, check_paths=not no_check_paths) for s in specs]
        for c in compiled:
            for warning in c.warnings:
                console.print(f"[yellow]warning:[/] {warning}")
            kinds: dict[str, int] = {}
            for stage in c.stages:
                kinds[stage.kind] = kinds.get(stage.kind, 0) + 1
            console.print(
                f"{c.spec.name}: {len(c.stages)} stages ("
                + ", ".join(f"{n} {k}" for k, n in kinds.items())
                + ")"
            )
        if dry_run:
            for c in compiled:
                for stage in c.stages:
                    console.print(f"  {stage.name}", highlight=False)
            return
        changed, pruned = publish(root, compiled, prune)
        for name in pruned:
            console.print(f"pruned: {name}", highlight=False)
        console.print(
            "wrote dvc.yaml and params.yaml" if changed else "dvc.yaml and params.yaml unchanged"
        )

    @app.command("dag")
    @friendly
    def dag_cmd(args: list[str] = typer.Argument(..., help="SPEC [KEY=VALUE ...]")) -> None:
        """Draw the stage graph of SPEC as a tree (data -> pretrain -> extract -> probe -> report)."""
        from rich.tree import Tree

        from vjepa.pipeline.compiler import compile_spec

        spec, overrides = _one_spec(args)
        compiled = compile_spec(spec, overrides, _root(), check_paths=False)
        colours = {
            "data": "blue",
            "pretrain": "magenta",
            "extract": "cyan",
            "probe": "green",
            "stream": "green",
            "report": "yellow",
        }
        tree = Tree(f"[bold]{compiled.spec.name}[/] ({len(compiled.stages)} stages)")
        nodes: dict[str, Any] = {}
        for stage in compiled.stages:
            parent = (
                nodes.get(stage.inputs[-1].name, tree)
                if stage.inputs and stage.kind != "report"
                else tree
            )
            label = f"[{colours[stage.kind]}]{stage.name}[/]"
            if stage.kind == "report":
                label += f" <- {len(stage.inputs)} probes"
            nodes[stage.name] = parent.add(label)
        console = _console()
        console.print(tree)
        _print_evaluation(console, compiled)

    @app.command("status")
    @friendly
    def status_cmd(
        args: list[str] = typer.Argument(..., help="SPEC [KEY=VALUE ...]"),
        run_id: str = typer.Option(None, "--run", help=RUN_OPTION_HELP),
        follow: bool = typer.Option(
            False, "--follow", "-f", help="Keep refreshing until no stage is pending or running."
        ),
        every: float = typer.Option(
            5.0,
            "--every",
            help="Seconds between refreshes of the states (--follow); progress moves every second.",
        ),
    ) -> None:
        """List each stage of SPEC as up to date, stale, running or failed, with timings, and the
        progress of the running ones (bar, figures, ETA)."""
        from vjepa.pipeline.attach import spec_status
        from vjepa.pipeline.compiler import compile_spec

        root, console = _root(), _console()
        spec, overrides = _run_spec(args, run_id, console)
        compiled = compile_spec(spec, overrides, root, check_paths=False)
        if not follow:
            rows, note = spec_status(root, compiled)
            _print_status(console, root, compiled, rows, note)
            _print_evaluation(console, compiled)
            return
        from rich.live import Live

        from vjepa.pipeline.follow import follow as follow_status
        from vjepa.pipeline.view import status_view

        with Live(console=console, auto_refresh=False, transient=False) as live:

            def show(rows: list[Any], note: str, snap: Any) -> None:
                live.update(status_view(root, compiled.spec.name, rows, note, snap), refresh=True)

            try:
                follow_status(root, compiled, show, every=every)
            except KeyboardInterrupt:
                live.stop()
                console.print(f"stopped following; the run goes on (`vjepa-exp status {spec}`)")
                raise typer.Exit(130) from None

    @app.command("results")
    @friendly
    def results_cmd(
        args: list[str] = typer.Argument(..., help="SPEC [KEY=VALUE ...]"),
        fmt: str = typer.Option("table", "--format", "-f", help="table | csv | md | json"),
        run_id: str = typer.Option(None, "--run", help=RUN_OPTION_HELP),
        plot: bool = typer.Option(
            False, "--plot", help="Also write the report's PNG plots for SPEC; print their paths."
        ),
    ) -> None:
        """The result table of SPEC (mean ± std over seeds, best per column, delta to the baseline)."""
        from vjepa.errors import UserError
        from vjepa.pipeline.compiler import compile_spec

        if fmt not in FORMATS:
            raise UserError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
        root, console = _root(), _console()
        # a table in another format goes to a pipe or a file: the run's note would corrupt it
        quiet = console if fmt == "table" else _console_to(sys.stderr)
        spec, overrides = _run_spec(args, run_id, quiet)
        compiled = compile_spec(spec, overrides, root, check_paths=False)
        _print_results(console, root, compiled, fmt)
        if plot:
            from vjepa.pipeline.plots import write_spec_plots

            for path in write_spec_plots(root, compiled):
                quiet.print(str(path), highlight=False, markup=False)

    @app.command("compare")
    @friendly
    def compare_cmd(
        args: list[str] = typer.Argument(..., help="SPEC_A [SPEC_B] [KEY=VALUE ...]"),
        rev: str = typer.Option(
            None, "--rev", help="Compare SPEC_A with its results at this git revision."
        ),
        fmt: str = typer.Option("table", "--format", "-f", help="table | csv | json"),
    ) -> None:
        """Cell-by-cell differences between two specs, or one spec now and at a git revision."""
        import json

        from rich.table import Table

        from vjepa.pipeline.compare import compare_specs

        specs, overrides = _split(args)
        found = compare_specs(_root(), specs, overrides, rev)
        rows, names = found.rows, found.names
        if fmt == "json":
            typer.echo(json.dumps(rows, indent=2))
            return
        if fmt == "csv":
            import csv

            writer = csv.DictWriter(
                sys.stdout, fieldnames=list(rows[0]) if rows else ["a", "b", "diff"]
            )
            writer.writeheader()
            writer.writerows(rows)
            return
        table = Table(title=f"{found.metric}: {names[0]} vs {names[1]}")
        keys = [k for k in (rows[0] if rows else {}) if k not in ("a", "b", "diff")]
        for col in [*keys, names[0], names[1], "diff"]:
            table.add_column(str(col))
        for row in rows:
            vals = [row[k] for k in keys] + [row["a"], row["b"], row["diff"]]
            table.add_row(
                *[
                    f"{v * found.scale:.2f}"
                    if isinstance(v, float)
                    else ("—" if v is None else str(v))
                    for v in vals
                ]
            )
        _console().print(table)

    @app.command("cancel")
    @friendly
    def cancel_cmd(
        args: list[str] = typer.Argument(..., help="SPEC [KEY=VALUE ...]"),
        run_id: str = typer.Option(None, "--run", help=RUN_OPTION_HELP),
    ) -> None:
        """Stop the active run of SPEC (a live runner is interrupted and cleans up; detached SLURM jobs are scancelled)."""
        from vjepa.pipeline import attach
        from vjepa.pipeline.cancel import interrupt_runners
        from vjepa.pipeline.compiler import compile_spec

        root = _root()
        spec, overrides = _run_spec(args, run_id, _console())
        compiled = compile_spec(spec, overrides, root, check_paths=False)
        pids = interrupt_runners(root, compiled)  # SIGTERM: a background runner ignores SIGINT
        for pid in pids:
            typer.echo(f"{compiled.spec.name}: interrupted runner {pid}")
        cancelled = attach.cancel(root, compiled)
        if cancelled:
            typer.echo(f"{compiled.spec.name}: cancelled {len(cancelled)} SLURM jobs")
        if not pids and not cancelled:
            typer.echo(f"{compiled.spec.name}: nothing is running")

    @app.command("runs")
    @friendly
    def runs_cmd(spec: Path = typer.Argument(..., help="SPEC")) -> None:
        """The recorded runs of SPEC, latest last: id, start, executor, stages, overrides."""
        from vjepa.pipeline.runs import runs_of

        console = _console()
        found = runs_of(_root(), spec)
        if not found:
            console.print(f"{spec}: no recorded run")
            return
        for r in found:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started))
            console.print(
                f"{r.id}  {when}  {r.executor:5s}  {len(r.stages):3d} stages  "
                f"{' '.join(r.overrides) or '(no overrides)'}",
                highlight=False,
            )

    @app.command("exec", hidden=True)
    @friendly
    def exec_cmd(
        stage: str = typer.Argument(..., help="Stage name in dvc.yaml / params.yaml."),
    ) -> None:
        """Run one compiled stage (the command of every dvc.yaml stage)."""
        from vjepa.pipeline.runner import exec_stage

        metrics = exec_stage(_root(), stage)
        typer.echo(f"{stage}: done ({len(metrics)} metrics)")
