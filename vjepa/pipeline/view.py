"""What a person watching a run sees: the live panel of ``vjepa-exp run`` and ``status``.

Per running stage a bar with done/total, its figures (loss, lr, clips/s, best val) and an ETA;
finished stages folded into one summary line and the last few; an overall bar with the run's ETA
(``vjepa.pipeline.eta``). Every line is cut to the console's width, and stage names are shortened
in the middle (their kind and uid stay readable), so the panel fits an 80-column terminal; the
status table keeps the full names. Output that is no terminal gets one line per event instead.
Nothing here calls DVC or an executor: the panel draws a snapshot (``vjepa.pipeline.watch``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.text import Text

from vjepa.pipeline import status
from vjepa.pipeline.eta import Eta, run_eta, stage_remaining, typical_seconds
from vjepa.pipeline.watch import FINISHED, RunSnap, StageSnap, from_runner

BAR_MAX = 40  # a wider bar says no more on a wide terminal
BAR_MIN = 10
LAST_FINISHED = 3
MOST_RUNNING = 8  # stage blocks drawn at most (a SLURM run may run dozens): the rest are counted
UID_TAIL = 11  # "-" + the 10 hex digits of a uid: kept whole when a name is shortened
FIGURE_ORDER = ("loss", "lr", "clips_per_s", "best_val")
FIGURE_NAMES = {"clips_per_s": "clips/s", "best_val": "best val"}
STATE_STYLES = {"done": "green", "failed": "red", "cancelled": "yellow", "running": "cyan"}


def human_seconds(seconds: float, precise: bool = True) -> str:
    """``12.3s``, ``4m05s``, ``2h07m``, ``3d04h`` (whole seconds unless ``precise``)."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f}s" if precise else f"{seconds:.0f}s"
    whole = int(round(seconds))
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


def eta_text(eta: Eta) -> str:
    """``ETA 4m05s``; ``ETA >4m05s`` when some stages' times are unknown; ``ETA ?`` for none."""
    if not eta.known:
        return "ETA ?"
    return f"ETA {'>' if eta.unknown else ''}{human_seconds(eta.seconds, precise=False)}"


def shorten(name: str, width: int) -> str:
    """``name`` in at most ``width`` characters, cut in the middle (its uid kept at the end)."""
    if len(name) <= width:
        return name
    if width <= 1:
        return name[:width]
    tail = min(UID_TAIL, (width - 1) // 2)
    head = width - 1 - tail
    return name[:head] + "…" + (name[-tail:] if tail else "")


def number(value: float) -> str:
    """A figure as people read it: ``0.412``, ``85.2``, ``6.25e-04``, ``1200``."""
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    if abs(value) < 1e-3 or abs(value) >= 1e6:
        return f"{value:.2e}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.3g}"


def figure_chunks(figures: dict[str, float]) -> list[str]:
    """``loss 0.412``, ``lr 6.25e-04``, ...: the usual figures first, then the others by name."""
    names = [n for n in FIGURE_ORDER if n in figures] + sorted(
        n for n in figures if n not in FIGURE_ORDER
    )
    return [f"{FIGURE_NAMES.get(n, n.replace('_', ' '))} {number(figures[n])}" for n in names]


def pack(chunks: Iterable[str], width: int, indent: str = "  ") -> list[str]:
    """``chunks`` joined by two spaces into lines of at most ``width`` characters."""
    lines: list[str] = []
    line = ""
    for chunk in chunks:
        if line and len(indent) + len(line) + 2 + len(chunk) > width:
            lines.append(indent + line)
            line = ""
        line = f"{line}  {chunk}" if line else chunk
    if line:
        lines.append(indent + line)
    return lines


def bar(fraction: float, width: int) -> Text:
    """``━━━━────``: done in colour, the rest dim."""
    fraction = min(1.0, max(0.0, fraction))
    filled = int(round(fraction * width))
    text = Text()
    text.append("━" * filled, style="green" if fraction >= 1 else "cyan")
    text.append("─" * (width - filled), style="dim")
    return text


def _bar_line(fraction: float, right: str, width: int) -> Text:
    """``  <bar> <right>``, the bar as wide as the line leaves (within BAR_MIN..BAR_MAX)."""
    size = max(BAR_MIN, min(BAR_MAX, width - 3 - len(right)))
    line = Text("  ")
    line.append(bar(fraction, size))
    line.append(f" {right}")
    return line


class RunPanel:
    """A run's progress drawn at the width it is given (rich renderable)."""

    def __init__(self, snap: RunSnap, summary: bool = True) -> None:
        self.snap = snap
        self.summary = summary  # False under the status table, which lists every stage already

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.lines(options.max_width):
            line.no_wrap, line.overflow = True, "ellipsis"
            line.truncate(options.max_width, overflow="ellipsis")
            yield line

    def lines(self, width: int) -> Iterator[Text]:
        snap = self.snap
        typical = typical_seconds(snap)
        yield from self._overall(width)
        running = [s for s in snap.stages if s.state == "running"]
        for stage in running[:MOST_RUNNING]:
            yield from self._running(stage, typical, width)
        if len(running) > MOST_RUNNING:
            yield Text(f"+ {len(running) - MOST_RUNNING} more running", style="cyan")
        if self.summary:
            yield from self._finished(width)
        yield from self._pending()

    def _overall(self, width: int) -> Iterator[Text]:
        snap = self.snap
        work = [s for s in snap.stages if s.state != "idle"]
        finished = snap.count(*FINISHED)
        parts = [f"{finished}/{len(work)} stages"]
        for state in ("running", "pending", "failed"):
            if snap.count(state):
                parts.append(f"{snap.count(state)} {state}")
        eta = run_eta(snap)
        if eta.active:
            parts.append(eta_text(eta))
        head = Text()
        head.append(f"{snap.title}: ", style="bold")
        head.append(" · ".join(parts))
        yield head
        if work:
            running = sum(s.progress.fraction for s in work if s.progress and s.state == "running")
            fraction = (finished + running) / len(work)
            yield _bar_line(fraction, f"{fraction * 100:3.0f}%", width)

    def _running(self, s: StageSnap, typical: dict[str, float], width: int) -> Iterator[Text]:
        p = s.progress
        right = "  " + " · ".join(
            x
            for x in (
                p.phase if p else "",
                human_seconds(s.seconds, precise=False) if s.seconds is not None else "",
                f"job {s.job}" if s.job else "",
            )
            if x
        )
        line = Text()
        line.append("▸ ", style="cyan")
        line.append(shorten(s.name, max(UID_TAIL + 2, width - 2 - len(right))))
        line.append(right, style="dim")
        yield line
        left = stage_remaining(s, self.snap.now, typical)
        if left is None:
            eta = "ETA ?"
        else:  # "~": estimated from other stages of its kind, not measured by this one
            own = p is not None and p.eta_s is not None
            eta = f"ETA {'' if own else '~'}{human_seconds(left, precise=False)}"
        if p is None:
            yield Text(f"  no progress reported yet  {eta}", style="dim")
            return
        count = f"{p.done}/{p.total} {p.unit}".rstrip()
        yield _bar_line(p.fraction, f"{count}  {eta}", width)
        for text in pack(figure_chunks(p.figures), width):
            yield Text(text)

    def _finished(self, width: int) -> Iterator[Text]:
        snap = self.snap
        finished = [s for s in snap.stages if s.state in FINISHED]
        if not finished:
            return
        counts = ", ".join(f"{snap.count(state)} {state}" for state in FINISHED)
        yield Text(f"finished: {counts}")
        last = sorted(finished, key=lambda s: s.ended or 0.0)[-LAST_FINISHED:]
        for s in last:
            secs = human_seconds(s.seconds) if s.seconds is not None else ""
            line = Text("  ")
            line.append(f"{s.state:9s} ", style=STATE_STYLES.get(s.state, ""))
            line.append(shorten(s.name, max(UID_TAIL + 2, width - 14 - len(secs))))
            line.append(f"  {secs}" if secs else "")
            yield line

    def _pending(self) -> Iterator[Text]:
        kinds = Counter(s.kind for s in self.snap.stages if s.state == "pending")
        if kinds:
            what = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
            yield Text(f"pending: {sum(kinds.values())} ({what})", style="dim")


STATUS_COLOURS = {
    "up to date": "green",
    "stale": "yellow",
    "running": "cyan",
    "pending": "dim",
    "failed": "red",
}


def status_view(
    root: Path,
    name: str,
    rows: list[status.StageStatus],
    note: str,
    snap: RunSnap | None = None,
) -> Group:
    """The status table (full stage names); the progress of a run in flight; the log tail of
    each failed or running stage."""
    from rich.table import Table

    parts: list[Any] = []
    if note:
        parts.append(Text.from_markup(f"[yellow]warning:[/] {note}"))
    done = sum(r.state == "up to date" for r in rows)
    table = Table(title=f"{name}: {done}/{len(rows)} up to date")
    for col in ("stage", "state", "time", "note"):
        table.add_column(col, overflow="fold")
    for r in rows:
        secs = f"{r.seconds:.1f}s" if r.seconds is not None else ""
        table.add_row(r.name, f"[{STATUS_COLOURS[r.state]}]{r.state}[/]", secs, r.note)
    parts.append(table)
    if snap is not None and snap.count("running", "pending"):
        parts.append(RunPanel(snap, summary=False))
    for r in rows:
        if r.log_tail and r.state in ("failed", "running"):
            colour = STATUS_COLOURS[r.state]
            log = status.log_path(root, r.name)
            parts.append(Text.from_markup(f"[{colour}]{r.state}[/]: {r.name}; log: {log}"))
            parts.append(Text(r.log_tail, style="dim"))
    return Group(*parts)


class RunView:
    """The runner's view: a live panel on a terminal; one line per event otherwise."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live: Any = None

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {message}")

    def panel(self, runner: Any) -> RunPanel:
        return RunPanel(from_runner(runner))

    def start(self, runner: Any) -> None:
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(
                self.panel(runner), console=self.console, refresh_per_second=2, transient=True
            )
            self.live.start()
        else:
            self.console.print(f"{runner.compiled.spec.name}: running {len(runner.todo)} stages")

    def update(self, runner: Any) -> None:
        if self.live is not None:
            self.live.update(self.panel(runner))

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def event(self, name: str, what: str, seconds: float | None) -> None:
        secs = f" ({seconds:.1f}s)" if seconds is not None else ""
        self.console.print(f"{what}: {name}{secs}", highlight=False)

    def failure(self, name: str, reason: str, log_tail: str, log: str) -> None:
        self.console.print(f"[red]failed[/]: {name} ({reason}); log: {log}", highlight=False)
        if log_tail:
            self.console.print(log_tail, markup=False, highlight=False, style="dim")
