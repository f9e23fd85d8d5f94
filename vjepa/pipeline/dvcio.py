"""dvc.yaml / params.yaml writing, and DVC's own view of what is stale (status) and what ran (commit).

The files are rendered deterministically (stable order, sorted params) and replaced atomically
only when their bytes change. params.yaml also holds ``vjepa-specs``, the registry of compiled
specs, so that ``--prune`` knows on any clone which stages some spec still needs.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from vjepa.errors import SpecError, UserError
from vjepa.pipeline import uptodate
from vjepa.pipeline.code_deps import cached_code_deps
from vjepa.pipeline.graph import KINDS, Stage, parse_name
from vjepa.pipeline.placement import is_placement
from vjepa.pipeline.plots import dvc_plots
from vjepa.utils.io import atomic_write_json, atomic_write_text, read_json_object

REGISTRY = "vjepa-specs"
CMD_PREFIX = "vjepa-exp exec "
DVCIGNORE_LINES = ("__pycache__/", "*.pyc")
CODE_DEPS_CACHE = Path(".vjepa") / "cache" / "code_deps.json"
RENDER_MEMO = Path(".vjepa") / "cache" / "render.json"


def find_root(start: Path | None = None) -> Path:
    """The project root: the nearest folder upwards holding ``.dvc/`` (else ``start``)."""
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / ".dvc").is_dir():
            return folder
    return start


def dvc_env() -> dict[str, str]:
    """The environment every DVC call gets (no analytics, no update checks)."""
    return {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_NO_UPDATER": "1"}


def stage_entry(stage: Stage, root: Path) -> dict[str, Any]:
    """The dvc.yaml entry of ``stage``."""
    deps = [s.out for s in stage.inputs]
    encoder = (stage.config.get("stream") or stage.config).get("encoder") or {}
    if stage.kind in ("extract", "stream") and encoder.get("source") == "official":
        path = encoder["path"]
        if not Path(path).is_absolute():
            deps.append(path)
    if (
        stage.kind == "data"
        and stage.config.get("source")
        and not Path(stage.config["source"]).is_absolute()
    ):
        deps.append(stage.config["source"])
    if stage.kind == "data" and stage.config.get("dataset"):
        # a CSV is hashed cheaply; a folder of a million images is not a dependency (docs/datasets.md)
        deps += [
            s for sources in stage.config["splits"].values() for s in sources if s.endswith(".csv")
        ]
    # the stage kind's source files, where the project holds them (a checkout of this repo)
    deps += [p for p in cached_code_deps(stage.kind, root / CODE_DEPS_CACHE) if (root / p).exists()]
    out: Any = {stage.out: {"persist": True}} if stage.persist else stage.out
    return {
        "cmd": CMD_PREFIX + stage.name,
        "params": [stage.name],
        "deps": sorted(set(deps)),
        "outs": [out],
        "metrics": [{stage.metrics_file: {"cache": False}}],
    }


def _dump(data: Any, sort_keys: bool) -> str:
    """Plain YAML: a value shared by two stages is written out twice, never as an anchor/alias.

    libyaml's emitter where PyYAML has it (the pure-Python one took seconds on the merged files);
    both write the same bytes for these files (tests/pipeline/test_pipeline_committed.py)."""
    import yaml

    base = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    class PlainDumper(base):  # type: ignore[misc, valid-type]
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return yaml.dump(
        data,
        Dumper=PlainDumper,
        sort_keys=sort_keys,
        default_flow_style=False,
        width=4096,
        allow_unicode=True,
    )


def _load(path: Path) -> dict[str, Any]:
    """``path`` parsed; {} when missing. The top level is a copy (render edits it); the values
    below it are shared within the process: read them, do not change them."""
    try:
        st = path.stat()
    except OSError:
        return {}
    return dict(_parsed(str(path), st.st_size, st.st_mtime_ns, st.st_ino))


@functools.lru_cache(maxsize=8)
def _parsed(path: str, size: int, mtime_ns: int, inode: int) -> dict[str, Any]:
    """One parse per file version and process: a no-op run reads dvc.yaml, params.yaml and
    dvc.lock (~0.5 MB together) for the render and again for the up-to-date fingerprint."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster on params.yaml
    data = yaml.load(Path(path).read_text(), Loader=loader) or {}
    if not isinstance(data, dict):
        raise UserError(f"{Path(path).name}: expected a mapping at the top")
    return data


def _managed(name: str, entry: Any) -> bool:
    return isinstance(entry, dict) and str(entry.get("cmd", "")).startswith(CMD_PREFIX)


def _stage_order(item: tuple[str, Any]) -> tuple:
    name, entry = item
    if not _managed(name, entry):
        return (0, "")  # hand-written stages first, in their own order (sort is stable)
    try:
        kind = parse_name(name)[0]
    except ValueError:
        return (1, 0, name)
    return (1, KINDS.index(kind), name)


def registry_entry(spec_file: str, overrides: list[str], stages: Iterable[Stage]) -> dict[str, Any]:
    """A spec's registry entry; placement overrides (executor=slurm, sweep.storage=...) are left
    out: where a run happens is its run record's business (.vjepa/runs), not the repository's."""
    return {
        "file": spec_file,
        "overrides": [o for o in overrides if not is_placement(o.partition("=")[0].strip())],
        "stages": sorted(s.name for s in stages),
    }


def check_name_free(root: Path, name: str, spec_file: str) -> None:
    """Two spec files may not share a name: their registry entries would overwrite each other."""
    registry = _load(root / "params.yaml").get(REGISTRY) or {}
    other = registry.get(name, {}).get("file")
    if other and other != spec_file and (root / other).exists():
        raise SpecError(
            f"{spec_file}: name: {name!r} is already the name of {other}; choose another name"
        )


def render(root: Path, compiled: list[Any], prune: bool = False) -> tuple[str, str, list[str]]:
    """The new dvc.yaml and params.yaml texts, merging ``compiled`` specs into what is there.

    A recompiled spec's stages that no compiled spec needs any more are dropped (so `dvc repro`
    never runs an obsolete variant); ``prune`` also drops every stage no registered spec needs.
    Returns (dvc_yaml, params_yaml, dropped stage names). Checks the spec names first.

    A render that changed nothing is remembered by a hash of its inputs (both files' bytes and
    the compiled entries): the same inputs again skip parsing and writing ~0.5 MB of YAML.
    """
    key = None if prune else _render_key(root, compiled)
    if key is not None and read_json_object(root / RENDER_MEMO).get("unchanged") == key:
        return (root / "dvc.yaml").read_text(), (root / "params.yaml").read_text(), []
    for c in compiled:
        check_name_free(root, c.spec.name, c.spec.file)
    dvc = _load(root / "dvc.yaml")
    params = _load(root / "params.yaml")
    stages: dict[str, Any] = dict(dvc.get("stages") or {})
    registry: dict[str, Any] = dict(params.get(REGISTRY) or {})
    replaced: set[str] = set()  # stages a recompiled spec needed before but needs no more
    for c in compiled:
        replaced |= set(registry.get(c.spec.name, {}).get("stages", []))
        registry[c.spec.name] = registry_entry(c.spec.file, c.spec.overrides, c.stages)
        for stage in c.stages:
            stages[stage.name] = stage_entry(stage, root)
            params[stage.name] = stage.config
    if prune:
        registry = {k: v for k, v in registry.items() if (root / v["file"]).exists()}
    needed = {name for entry in registry.values() for name in entry["stages"]}
    drop = [
        n
        for n, e in stages.items()
        if _managed(n, e) and n not in needed and (prune or n in replaced)
    ]
    for name in drop:
        del stages[name]
        params.pop(name, None)
    pruned = drop
    params[REGISTRY] = dict(sorted(registry.items()))
    dvc["stages"] = dict(sorted(stages.items(), key=_stage_order))
    section = dvc_plots([n for n, e in dvc["stages"].items() if _managed(n, e)], dvc.get("plots"))
    if section:
        dvc["plots"] = section
    else:
        dvc.pop("plots", None)
    texts = _dump(dvc, sort_keys=False), _dump(params, sort_keys=True)
    if key is not None and not drop and texts == _current_texts(root):
        atomic_write_json(root / RENDER_MEMO, {"unchanged": key})
    return *texts, sorted(pruned)


def _render_key(root: Path, compiled: list[Any]) -> str:
    digest = hashlib.sha256()
    for name in ("dvc.yaml", "params.yaml"):
        path = root / name
        digest.update(path.read_bytes() if path.is_file() else b"-")
        digest.update(b"\0")
    for c in compiled:
        entries = [[s.name, stage_entry(s, root), s.config] for s in c.stages]
        registry = registry_entry(c.spec.file, c.spec.overrides, c.stages)
        digest.update(json.dumps([c.spec.name, registry, entries], sort_keys=True).encode())
    return digest.hexdigest()


def _current_texts(root: Path) -> tuple[str, str] | None:
    paths = root / "dvc.yaml", root / "params.yaml"
    return (paths[0].read_text(), paths[1].read_text()) if all(p.is_file() for p in paths) else None


def write_if_changed(path: Path, text: str) -> bool:
    """Replace ``path`` atomically when its bytes differ; True when it was written."""
    if path.is_file() and path.read_text() == text:
        return False
    atomic_write_text(path, text)
    return True


def ensure_dvcignore(root: Path) -> None:
    """Byte-code caches must not count as code changes."""
    path = root / ".dvcignore"
    text = path.read_text() if path.is_file() else ""
    missing = [line for line in DVCIGNORE_LINES if line not in text.splitlines()]
    if missing:
        atomic_write_text(
            path,
            text + ("" if text.endswith("\n") or not text else "\n") + "\n".join(missing) + "\n",
        )


def read_stages(root: Path) -> dict[str, Any]:
    """The stage entries of dvc.yaml ({} when there is none)."""
    return _load(root / "dvc.yaml").get("stages") or {}


def read_params(root: Path) -> dict[str, Any]:
    """params.yaml as a dict (empty when missing)."""
    return _load(root / "params.yaml")


# --------------------------------------------------------------------------------------------
# DVC's view. dvc.repo is imported here only, inside the calls.


DVC_LOG = Path(".vjepa") / "logs" / "dvc.log"


@contextlib.contextmanager
def _dvc_to_log(root: Path) -> Iterator[None]:
    """Everything DVC prints goes to ``.vjepa/logs/dvc.log``, never to the user's terminal.

    As a library DVC writes through its "dvc" logger and through tqdm bars on stderr ("Collecting
    files and computing hashes", "Waiting to acquire lock", bare "!" lines), which scrolled through
    the runner's live view. Within the call the logger writes to the log alone, and stderr is the
    log (a file is no terminal, so DVC's bars switch themselves off). A DVC error comes back as one
    line naming the log; its traceback is in the log.
    """
    import logging

    from dvc.exceptions import DvcException

    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    log = root / DVC_LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("dvc")
    saved = (logger.level, logger.propagate, list(logger.handlers))
    with open(log, "a") as fh:
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.handlers, logger.propagate = [handler], False
        logger.setLevel(logging.INFO)
        try:
            with contextlib.redirect_stderr(fh):
                yield
        except DvcException as exc:
            logger.exception("DVC call failed")
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"DVC: {first} (details: {DVC_LOG})") from None
        finally:
            logger.setLevel(saved[0])
            logger.propagate, logger.handlers = saved[1], saved[2]


@contextlib.contextmanager
def _params_read_once() -> Iterator[None]:
    """DVC parses params.yaml and searches it with dpath once per stage: a no-op status of the
    quickstart's 31 stages spent 27 of its 28 s there. Within one status call each file is parsed
    once, and a plain key (a stage's section) is picked out directly; a key with dots or glob
    characters goes through DVC's own reader."""
    import copy

    import dvc.dependency.param as param

    original = param.read_param_file
    parsed: dict[tuple[str, str], Any] = {}

    def read(fs: Any, path: str, key_paths: Any = None, flatten: bool = False, **kw: Any) -> Any:
        plain = key_paths and not any(set(k) & set(".*?[]") for k in key_paths)
        if not plain:
            return original(fs, path, key_paths, flatten, **kw)
        cache_key = (path, repr(sorted(kw.items())))
        if cache_key not in parsed:
            parsed[cache_key] = param.load_path(path, fs, **kw)
        config = parsed[cache_key]
        # flattened or nested, a top-level key reads the same: {key: its section}
        return {k: copy.deepcopy(config[k]) for k in dict.fromkeys(key_paths) if k in config}

    param.read_param_file = read
    try:
        yield
    finally:
        param.read_param_file = original


def stale(root: Path, names: Iterable[str]) -> set[str]:
    """The stages among ``names`` that DVC reports as changed (deps, params, outs or never run).

    A set DVC found up to date before is not asked again while its fingerprint holds
    (vjepa.pipeline.uptodate): the no-op ``run``/``status`` of a spec stays well under DVC's
    own seconds."""
    names = sorted(set(names))
    if not names:
        return set()
    if uptodate.known_up_to_date(root, names):
        return set()
    stages = read_stages(root)
    paths = uptodate.stage_paths(stages[n] for n in names if n in stages)
    files, stats = uptodate.files_digest(root), uptodate.stats_digest(root, paths)
    changed = _dvc_stale(root, names)
    unmoved = uptodate.files_digest(root) == files and uptodate.stats_digest(root, paths) == stats
    if not changed and unmoved:  # nothing moved while DVC looked
        uptodate.remember_up_to_date(root, names, files, paths, stats)
    return changed


def _dvc_stale(root: Path, names: list[str]) -> set[str]:
    from dvc.dvcfile import load_file
    from dvc.repo import Repo

    with _dvc_to_log(root), Repo(str(root)) as repo, repo.lock, _params_read_once():
        # Only this spec's stages, each built once from dvc.yaml: the merged file holds every
        # compiled spec's stages, and DVC's index builds all of them (and its targets= resolves
        # each name anew); a stage's status needs its own deps and outs, not the graph.
        loader = load_file(repo, "dvc.yaml").stages
        stages = [loader[name] for name in names if name in loader]
        return {stage.name for stage in stages if stage.status()}


def commit(root: Path, names: Iterable[str]) -> None:
    """Record finished stages in dvc.lock (``dvc commit -f``)."""
    from dvc.repo import Repo

    with _dvc_to_log(root), Repo(str(root)) as repo:
        for name in names:
            repo.commit(name, force=True)
