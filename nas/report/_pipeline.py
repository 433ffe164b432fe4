"""``nas run``: the whole pipeline — train a super-net, search its children, retrain the best
(plus a random child and the space's reference arch for comparison), and write a report.

Every stage writes into its own folder of OUT and is skipped on a rerun once complete, so a crashed
or interrupted pipeline resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from nas import _rundir as rundir
from nas._errors import NasUsageError
from nas._rundir import atomic_write_json, atomic_write_text, read_json, versions


# The super-net settings `nas run` takes: TrainConfig's own fields (type and meaning said once,
# there), with the pipeline's defaults where they differ. ``seed`` also seeds search and retraining.
TRAIN_KEYS = ("space", "preset", "task", "mode", "steps", "seed", "batch_size", "lr", "ds_config",
              "data_dir", "tokenizer", "image_size", "num_workers", "align", "align_lambda", "anchor_every")
TRAIN_DEFAULTS = {"space": "bert", "mode": "uniform", "steps": 1500}  # mode: docs/reproduction.md
# Passed on to retraining as they are (the data and the DeepSpeed settings).
RETRAIN_KEYS = ("batch_size", "lr", "ds_config", "data_dir", "tokenizer", "image_size", "num_workers")


def _with_train_fields(cls: type) -> type:
    """Add TrainConfig's fields named in TRAIN_KEYS to ``cls`` (after ``out``, before its own), then
    make it a dataclass: PipelineConfig reuses TrainConfig instead of repeating its fields."""
    import typing

    from nas.train import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    train_fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    own = dict(cls.__annotations__)
    annotations = {"out": own.pop("out")}
    for name in TRAIN_KEYS:
        annotations[name] = hints[name]
        setattr(cls, name, TRAIN_DEFAULTS.get(name, train_fields[name].default))
    annotations.update(own)
    cls.__annotations__ = annotations
    return dataclass(cls)


@_with_train_fields
class PipelineConfig:
    """``nas run``'s settings: the super-net's (:data:`TRAIN_KEYS`, from TrainConfig), then the
    search's and the retraining's."""

    out: str = "nas-run"
    searcher: str = "evolutionary"
    budget: int = 60
    max_params: Optional[float] = None
    max_macs: Optional[float] = None
    objectives: Optional[str] = None
    retrain_steps: int = 1000
    compare_random: bool = True
    compare_reference: bool = True
    searcher_options: dict[str, Any] = field(default_factory=dict)
    storage: Optional[str] = None
    study_name: Optional[str] = None
    workers: int = 1

    @classmethod
    def from_sources(cls, file: Optional[str], overrides: dict[str, Any]) -> "PipelineConfig":
        """Keys from a TOML/YAML file, then command-line options (which win)."""
        data: dict[str, Any] = {}
        if file:
            data = load_config_file(file)
        data.update({k.replace("-", "_"): v for k, v in overrides.items() if v is not None})
        for key in ("max_params", "max_macs"):  # "1.5M" as in `nas search`
            if isinstance(data.get(key), str):
                from nas._words import parse_count

                data[key] = parse_count(data[key], f"--{key.replace('_', '-')}")
        from nas._words import check_known

        check_known(data, {f.name for f in dataclasses.fields(cls)}, "config key(s)",
                    f" in {file}" if file else "", "valid keys")
        from nas.train._config import check_field_types

        return cls(**check_field_types(cls, data, f" in {file}" if file else ""))


    def check(self) -> None:
        """Every option checked before any stage runs: a bad search or retrain option is one
        line at once, not after the super-net has trained."""
        def need(ok: bool, flag: str, rule: str, value: Any) -> None:
            if not ok:
                raise NasUsageError(f"--{flag.replace('_', '-')} must be {rule} (got {value})")

        for name in ("steps", "budget", "retrain_steps", "workers"):
            need(getattr(self, name) >= 1, name, ">= 1", getattr(self, name))
        for name in ("max_params", "max_macs"):
            value = getattr(self, name)
            need(value is None or (math.isfinite(value) and value > 0), name, "a positive number", value)
        from nas._registry import SPACES
        from nas.train import load_ds_config

        space = SPACES.get(self.space)(self.preset)
        if self.task is not None:
            from nas.tasks import TASKS

            TASKS.get(self.task)
        self.train_config(Path(self.out) / rundir.PIPELINE_SUPERNET).resolve()
        if self.ds_config is not None:
            load_ds_config(self.ds_config)
        for item in (self.objectives or "").split(","):
            direction = item.partition(":")[2].strip().lower()
            if direction not in ("", "max", "maximize", "min", "minimize"):
                raise NasUsageError(f"objective '{item.strip()}': direction must be max or min, e.g. params:min")
        # The searcher and its options, built once without a storage (nothing is written).
        from nas.searching._driver import _resolve_searcher

        name, cls, options = _resolve_searcher(self.searcher, self.search_options(),
                                               Path(self.out) / "search", self.workers, lambda: None)
        local = {k: v for k, v in options.items() if k not in ("storage", "study_name")}
        instance = cls(space, seed=self.seed, **local)
        instance.close()

    def train_config(self, run_dir: str | Path):
        """The super-net's :class:`~nas.train.TrainConfig` (training into ``run_dir``)."""
        from nas.train import TrainConfig

        return TrainConfig(out=str(run_dir), **{k: getattr(self, k) for k in TRAIN_KEYS})

    def retrain_options(self) -> dict[str, Any]:
        """The data and DeepSpeed settings retraining takes over from the super-net."""
        return {k: getattr(self, k) for k in RETRAIN_KEYS}

    def search_options(self) -> dict[str, Any]:
        """The searcher's options, with --storage / --study-name."""
        options = dict(self.searcher_options)
        if self.storage:
            options.setdefault("storage", self.storage)
        if self.study_name:
            options.setdefault("study_name", self.study_name)
        return options


# What each stage depends on: once a stage has started in OUT, these settings must stay the same
# (a rerun resumes that stage; with other settings it would report what did not happen).
STAGE_KEYS = {
    "supernet": tuple(k for k in TRAIN_KEYS if k != "num_workers"),  # workers may change
    "search": ("searcher", "budget", "max_params", "max_macs", "objectives", "searcher_options",
               "storage", "study_name"),
    "retrain": ("retrain_steps", "compare_random", "compare_reference"),
}


def load_config_file(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise NasUsageError(f"config file not found: {p}")
    if p.is_dir():
        raise NasUsageError(f"config file {p} is a folder; give a .toml or .yaml file")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NasUsageError(f"config file {p} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise NasUsageError(f"cannot read config file {p}: {exc.strerror or exc}") from None
    try:
        if p.suffix == ".toml":
            try:
                import tomllib
            except ImportError:  # Python < 3.11
                import tomli as tomllib
            data = tomllib.loads(text)
        elif p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise NasUsageError(f"config file {p} must end in .toml, .yaml or .yml")
    except NasUsageError:
        raise
    except Exception as exc:
        raise NasUsageError(f"cannot parse config file {p}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise NasUsageError(f"config file {p} must hold a table of keys, not {type(data).__name__}")
    return {k.replace("-", "_"): v for k, v in data.items()}


class Pipeline:
    def __init__(self, cfg: PipelineConfig, progress: bool = True, log=print):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.progress = progress
        self.log = log
        self.timings: dict[str, float] = {}
        self.skipped: list[str] = []
        self._evaluators: dict[Path, Any] = {}

    def evaluator(self, run_dir: Path):
        """The super-net evaluator of ``run_dir``, loaded once for search, comparison and report."""
        if run_dir not in self._evaluators:
            from nas.evaluate._supernet import SupernetEvaluator

            self._evaluators[run_dir] = SupernetEvaluator(run_dir)
        return self._evaluators[run_dir]

    # ---- stages --------------------------------------------------------------------------------
    def train(self) -> Path:
        from nas.train import train

        run_dir = self.out / rundir.PIPELINE_SUPERNET
        if rundir.is_trained(run_dir):
            self.skipped.append("train")
            return run_dir
        cfg = self.cfg.train_config(run_dir)
        train(cfg, resume=rundir.is_run(run_dir), show_progress=self.progress)
        return run_dir

    def search(self, run_dir: Path) -> dict[str, Any]:
        from nas.evaluate._supernet import SupernetEvaluator
        from nas.searching._driver import search

        folder = self.out / rundir.PIPELINE_SEARCH
        summary_path = folder / rundir.SEARCH_SUMMARY
        if summary_path.exists():
            self.skipped.append("search")
            return read_json(summary_path, "search summary")
        c = self.cfg
        evaluator = self.evaluator(run_dir)
        options = c.search_options()
        from nas._console import err_console

        result = search(evaluator, c.searcher, c.budget, seed=c.seed, max_params=c.max_params,
                        max_macs=c.max_macs, objectives=c.objectives, out=folder, options=options,
                        workers=c.workers, evaluator_factory=lambda: SupernetEvaluator(run_dir),
                        console=err_console if self.progress else None)
        summary = result.summary()
        if summary.get("best") is None:
            raise NasUsageError("the search found no arch within the constraints; loosen --max-params/--max-macs")
        return summary

    def comparison_archs(self, run_dir: Path, best: str) -> dict[str, str]:
        space = self.evaluator(run_dir).space
        archs = {"best": best}
        if self.cfg.compare_random:
            archs["random"] = space.encode(space.sample(random.Random(self.cfg.seed + 12345)))
        named = space.named_archs()
        if self.cfg.compare_reference and named:
            name = next(iter(named))
            archs[f"reference ({name})"] = space.encode(space.parse(name))
        return archs

    def retrain(self, archs: dict[str, str]) -> dict[str, dict[str, Any]]:
        from nas.child._retrain import retrain

        c = self.cfg
        results = {}
        for label, arch in archs.items():
            folder = self.out / rundir.PIPELINE_RETRAIN / label.split(" ")[0]
            if (folder / rundir.RESULT).exists():
                results[label] = read_json(folder / rundir.RESULT, "retrain result")
                if results[label]["arch"] == arch:
                    self.skipped.append(f"retrain {label}")
                    continue
                raise NasUsageError(f"{folder} holds a retraining of another arch; delete it or use another --out")
            self.log(f"retraining {label}: {arch}")
            results[label] = retrain(c.space, arch, folder, task=c.task, steps=c.retrain_steps,
                                     seed=c.seed, preset=c.preset,
                                     resume=rundir.is_run(folder),
                                     show_progress=self.progress, **c.retrain_options())
        return results

    # ---- the whole run -------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Under the deepspeed launcher every rank trains and retrains (data parallel); rank 0
        alone searches and reports, and the others wait for its result."""
        from nas import _distributed as dist

        self.cfg.check()  # every option, before any stage runs or anything is written
        dist.init()
        if dist.is_main():
            self.out.mkdir(parents=True, exist_ok=True)
            self._write_config()
        dist.barrier()
        started = time.time()
        t = time.time()
        run_dir = self.train()
        self.timings["train"] = time.time() - t
        t = time.time()
        summary = dist.broadcast(self.search(run_dir) if dist.is_main() else None)
        self.timings["search"] = time.time() - t
        t = time.time()
        best = summary["best"]
        archs = self.comparison_archs(run_dir, best["arch"])
        results = self.retrain(archs)
        self.timings["retrain"] = time.time() - t
        if not dist.is_main():
            return {}
        t = time.time()
        report = self.report(run_dir, summary, archs, results)
        self.timings["report"] = time.time() - t
        report["timings"] = {k: round(v, 1) for k, v in self.timings.items()}
        report["timings"]["total"] = round(time.time() - started, 1)
        report["skipped_stages"] = self.skipped
        atomic_write_json(self.out / "report.json", report)
        atomic_write_text(self.out / rundir.PIPELINE_REPORT, render_markdown(report))
        return report

    def _write_config(self) -> None:
        path = self.out / rundir.CONFIG
        resolved = {"pipeline": dataclasses.asdict(self.cfg), "versions": versions()}
        if path.exists():
            stored = read_json(path, "pipeline config")
            stored = stored.get("pipeline") if isinstance(stored, dict) else None
            if not isinstance(stored, dict):
                raise NasUsageError(f"{path} is not a `nas run` config; choose another --out")
            # A stage that has started keeps its settings: a rerun resumes it, and the report
            # names only settings that were used. Settings of stages not started yet may change.
            changed = [k for stage, keys in STAGE_KEYS.items() if (self.out / stage).exists()
                       for k in keys if k in stored and stored[k] != getattr(self.cfg, k)]
            if changed:
                detail = ", ".join(f"{k} {stored[k]!r} (given {getattr(self.cfg, k)!r})" for k in changed)
                raise NasUsageError(
                    f"{self.out} holds a pipeline run with other {', '.join(changed)}: {detail}; "
                    "rerun with the stored options to resume, or choose another --out"
                )
        atomic_write_json(path, resolved)

    def report(self, run_dir: Path, summary: dict[str, Any], archs: dict[str, str],
               results: dict[str, dict[str, Any]]) -> dict[str, Any]:
        from nas.report._plots import scatter

        ev = self.evaluator(run_dir)
        metric = ev.primary_metric
        rows = []
        for label, arch in archs.items():
            r = results[label]
            rows.append({
                "label": label, "arch": arch, "supernet_estimate": ev.evaluate(arch)[metric],
                "retrained_dev": r["metrics"]["dev"][metric], "retrained_test": r["metrics"]["test"][metric],
                "params": r["params"], "macs": r["macs"], "retrain_seconds": r["seconds"],
            })
        best_row = rows[0]
        scatter(self.out / "estimate_vs_retrained.png", [r["supernet_estimate"] for r in rows],
                [r["retrained_dev"] for r in rows], f"super-net estimate ({metric}, dev)",
                f"retrained {self.cfg.retrain_steps} steps ({metric}, dev)", "estimate vs retrained")
        train_summary = rundir.read_train_summary(run_dir)
        return {
            "space": ev.space.name, "preset": ev.space.preset, "task": ev.task.name, "metric": metric,
            "mode": self.cfg.mode, "searcher": summary.get("searcher", self.cfg.searcher),
            "budget": summary.get("budget", self.cfg.budget),
            "best_arch": best_row["arch"], "supernet_estimate": best_row["supernet_estimate"],
            "retrained_metric": best_row["retrained_dev"], "retrained_test_metric": best_row["retrained_test"],
            "comparison": rows, "search": {k: summary.get(k) for k in ("evaluations", "budget", "searcher", "out", "pareto") if k in summary},
            "train": {"steps": train_summary["steps"], "seconds": train_summary["seconds"],
                      "anchor": train_summary.get("anchor")},
            "plots": {"search_progress": "search/" + _search_plot(self.out / "search"),
                      "estimate_vs_retrained": "estimate_vs_retrained.png"},
            "out": str(self.out),
        }


def _search_plot(folder: Path) -> str:
    pngs = sorted(p.name for p in folder.glob("*.png"))
    return next((p for p in pngs if "best" in p), pngs[0] if pngs else "")


def render_markdown(r: dict[str, Any]) -> str:
    m = r["metric"]
    lines = [
        f"# magic-nas report: {r['space']} ({r['preset']}) on {r['task']}",
        "",
        f"Super-net trained with **{r['mode']}** for {r['train']['steps']} steps; "
        f"searched with **{r['searcher']}** over {r['search'].get('evaluations')} distinct children.",
        "",
        f"**Best arch:** `{r['best_arch']}` — super-net estimate {r['supernet_estimate']:.4f}, "
        f"retrained {m} {r['retrained_metric']:.4f} (dev), {r['retrained_test_metric']:.4f} (test).",
        "",
        "| child | arch | super-net estimate | retrained dev | retrained test | params | MACs |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in r["comparison"]:
        lines.append(f"| {row['label']} | `{row['arch']}` | {row['supernet_estimate']:.4f} | "
                     f"{row['retrained_dev']:.4f} | {row['retrained_test']:.4f} | {row['params']:,} | {row['macs']:,} |")
    lines += ["", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in r.get("timings", {}).items()]
    lines += ["", f"![search progress]({r['plots']['search_progress']})", "",
              f"![estimate vs retrained]({r['plots']['estimate_vs_retrained']})", ""]
    return "\n".join(lines)
