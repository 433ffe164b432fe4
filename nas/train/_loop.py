"""The one DeepSpeed training loop: super-net training in every mode, and standalone retraining.

Per step: pick the child (rank 0's choice is broadcast), forward it, add the MAGIC-A alignment to
the anchor's outputs (same super-net, no grad), ``engine.backward``, drop the gradients DeepSpeed
zero-filled for options the child did not use, ``engine.step`` with an optimizer that skips every
element whose gradient is zero (``_optim.py``), so unused options stay untouched under any ZeRO stage.
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any, Iterable, Optional

import torch

from nas import _distributed as dist
from nas import _rundir as rundir
from .._errors import NasUsageError
from nas.evaluate._forward import forward, mask_tokens, predict, scoring_mode, to_device
from .._registry import get_space
from nas._rundir import atomic_write_json, load_run_config, read_json, versions
from ._anchor import Anchor, align_weight, alignment_loss
from ._config import TrainConfig, load_ds_config, resolve_ds_config
from ._optim import build_optimizer, split_ds_config
from ._data import eval_batches, train_loader
from ._samplers import make_sampler
from ._weights import load_weights, save_weights


_TASKS: dict[tuple, Any] = {}

# Settings a resume may change: they do not change what is trained (``steps`` extends the run).
RESUME_MAY_CHANGE = frozenset({"steps", "save_every", "keep_checkpoints", "num_workers",
                               "tensorboard", "data_dir"})


def _given_fields(cfg: TrainConfig, given: Optional[Iterable[str]]) -> set[str]:
    """The settings the caller chose: ``given`` (the CLI knows which options were passed), else
    every field that differs from its default."""
    if given is not None:
        return set(given) - {"space", "out"}
    import dataclasses

    defaults = TrainConfig(space=cfg.space, out=cfg.out)
    return {f.name for f in dataclasses.fields(TrainConfig)
            if f.name not in ("space", "out") and getattr(cfg, f.name) != getattr(defaults, f.name)}


def _option(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def _resumed_config(run_dir: Path, stored: TrainConfig, cfg: TrainConfig, given: set[str]) -> TrainConfig:
    """The stored config, with the settings a resume may change taken from ``cfg``; any other
    setting given with another value than the stored one is refused."""
    import dataclasses

    from ._config import check_field_types

    check_field_types(TrainConfig, {k: getattr(cfg, k) for k in given})
    for name in sorted(given - RESUME_MAY_CHANGE):
        old, new = getattr(stored, name), getattr(cfg, name)
        if name == "arch" and old is not None and new is not None:  # "bert-base" = its tokens
            parse = get_space(stored.space, stored.preset).parse
            if parse(old) == parse(new):
                continue
        if new is not None and new != old:
            raise NasUsageError(
                f"{run_dir} was trained "
                f"{f'without {_option(name)}' if old is None else f'with {_option(name)} {old}'}, "
                f"not with {_option(name)} {new}; resume without "
                f"{_option(name)} (settings of a run cannot change) or choose another --out"
            )
    changes = {k: getattr(cfg, k) for k in given & RESUME_MAY_CHANGE if getattr(cfg, k) is not None}
    if changes.get("steps", stored.steps) < stored.steps:
        raise NasUsageError(
            f"{run_dir} is a run of --steps {stored.steps}; --steps {changes['steps']} would shorten "
            "it (a larger --steps extends it); resume without --steps or choose another --out"
        )
    resumed = dataclasses.replace(stored, **changes)
    resumed.check_values()
    return resumed


def _resumed_ds_config(run_dir: Path, stored: dict[str, Any], cfg: TrainConfig) -> dict[str, Any]:
    """The DeepSpeed config a resume trains on: resolved again for the new length, with the
    optimizer the run recorded when it trained from the defaults (a newer version may have changed
    the space's default, e.g. bert's learning rate); an edited --ds-config file that would change
    how the run trains midway is refused."""
    from ._config import ds_config_changes

    ds = resolve_ds_config(load_ds_config(cfg.ds_config), cfg, dist.world_size())
    recorded = stored.get("deepspeed")
    if not recorded:  # runs from before config.json recorded it
        return ds
    if cfg.ds_config is None and "optimizer" in recorded:
        ds["optimizer"] = copy.deepcopy(recorded["optimizer"])
    for key, old, new in ds_config_changes(recorded, ds):
        source = cfg.ds_config or f"the {cfg.space} defaults"
        raise NasUsageError(
            f"{run_dir} was trained with DeepSpeed {key} {json.dumps(old)}, but {source} now gives "
            f"{json.dumps(new)}; restore it (a run's training settings cannot change midway) or "
            "choose another --out"
        )
    return ds


def _make_dir(path: Path) -> Optional[Path]:
    """Create ``path`` (and parents); returns the topmost folder created, or None. A folder that
    cannot be written to is one line."""
    top = None
    for parent in [path, *path.parents]:
        if parent.exists():
            break
        top = parent
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".nas-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise NasUsageError(f"cannot write to --out {path}: {exc.strerror or exc}; choose another --out") from None
    return top


def _clean_up_failed_start(init):
    """A start that fails before the run exists (bad data, bad option, Ctrl-C during set-up)
    removes what it created, so the corrected command does not find a half-made run."""
    import functools

    @functools.wraps(init)
    def wrapper(self, cfg, *args, **kwargs):
        out = Path(cfg.out)
        before = set(os.listdir(out)) if out.is_dir() else None
        try:
            init(self, cfg, *args, **kwargs)
        except BaseException:
            if getattr(self, "_pending_config", None) is not None and getattr(self, "_fresh", False) \
                    and dist.is_main() and out.is_dir() and not rundir.is_run(out):
                created = getattr(self, "_created", None)
                if created is not None:
                    shutil.rmtree(created, ignore_errors=True)
                elif before is not None:
                    for name in set(os.listdir(out)) - before:
                        target = out / name
                        if target.is_dir() and not target.is_symlink():
                            shutil.rmtree(target, ignore_errors=True)
                        else:
                            target.unlink(missing_ok=True)
            raise

    return wrapper


def build_task(cfg: TrainConfig, run_dir: Path):
    """The prepared task; prepared once per process (retraining many children reuses the data)."""
    from ..tasks import get_task

    options: dict[str, Any] = {}
    if cfg.image_size:
        options["image_size"] = cfg.image_size
    key = (cfg.task, cfg.task_seed, cfg.data_dir, cfg.tokenizer, tuple(sorted(options.items())))
    if key not in _TASKS:
        task = get_task(cfg.task, seed=cfg.task_seed, data_dir=cfg.data_dir, tokenizer=cfg.tokenizer,
                        **options)
        _TASKS[key] = task.prepare(run_dir)
    return _TASKS[key]


def build_space(cfg: TrainConfig, task):
    """The space at the run's preset, fitted to the task (vocabulary, classes, image size)."""
    from .._registry import SPACES

    overrides = dict(task.space_overrides())
    if cfg.objective == "mlm":
        if "vocab_size" not in overrides:
            raise NasUsageError(f"--objective mlm needs a text task; '{task.name}' has no vocabulary")
        overrides["vocab_size"] += 1  # one extra id for [MASK]
    overrides.update(cfg.space_overrides)
    preset = SPACES.get(cfg.space).presets.get(cfg.preset)
    fields = preset.__dataclass_fields__ if preset is not None else {}
    return get_space(cfg.space, cfg.preset,
                     **{k: v for k, v in overrides.items() if k in fields and v is not None})


def build_model(cfg: TrainConfig, space, task):
    head = "mlm" if cfg.objective == "mlm" else "classification"
    num_outputs = None if head == "mlm" else task.num_outputs
    only = space.parse(cfg.arch) if cfg.arch else None
    return space.build_supernet(num_outputs=num_outputs, only=only, head=head)


class Trainer:
    """Holds everything one run needs; ``run()`` trains to ``cfg.steps`` (resuming if asked)."""

    @_clean_up_failed_start
    def __init__(self, cfg: TrainConfig, resume: bool = False, show_progress: bool = True,
                 given: Optional[Iterable[str]] = None):
        dist.init()
        self.run_dir = Path(cfg.out)
        self.resume = resume
        self.show_progress = show_progress
        self._pending_config: Optional[dict[str, Any]] = None
        self._created: Optional[Path] = None
        self.cfg = self._check_run_dir(cfg, resume, _given_fields(cfg, given))
        cfg = self.cfg
        self.world, self.rank = dist.world_size(), dist.rank()
        torch.manual_seed(cfg.seed + 1000 * self.rank)
        random.seed(cfg.seed)
        self.task = build_task(cfg, self.run_dir)
        self.space = build_space(cfg, self.task)
        self.model = build_model(cfg, self.space, self.task)
        if cfg.init_from:
            load_weights(self.model, Path(cfg.init_from) / rundir.WEIGHTS, partial=True)
        self.sampler = make_sampler(cfg.mode, self.space, cfg.seed, cfg.arch, cfg.walk)
        self.anchor = Anchor(cfg.anchor_margin) if cfg.uses_anchor else None
        import contextlib
        import sys

        deepspeed = dist.quiet_deepspeed()
        # Our optimizer, not DeepSpeed's: it leaves every element with an exactly-zero gradient
        # untouched, so options the step's child did not use stay bit-identical under every ZeRO
        # stage, world size and precision (see _optim.py and ds_configs/README.md).
        engine_config, optimizer_section = split_ds_config(self.ds_config)
        optimizer = build_optimizer(optimizer_section, self.model.parameters())
        with contextlib.redirect_stdout(sys.stderr):
            self.engine, _, _, _ = deepspeed.initialize(
                model=self.model, optimizer=optimizer, config=engine_config,
            )
        self.device = self.engine.device
        self.zero_stage = self.ds_config.get("zero_optimization", {}).get("stage", 0)
        # Per slot, the parameters of each option: what a step's child leaves unused.
        self._slot_params = [{tok: list(op.parameters()) for tok, op in choice.ops.items()}
                             for choice in self.space.slot_modules(self.engine.module)]
        if self.world == 1 and self.zero_stage == 0:
            # Nothing to reduce; skip DeepSpeed zero-filling unused gradients. (ZeRO 1/2 move the
            # gradients into their partitions in that same call: they keep it.)
            self.engine.enable_backward_allreduce = False
        self.step = 0
        self.elapsed = 0.0
        self.dev_batches = eval_batches(
            self.task.dataset("dev"), self.task.collate, cfg.eval_batch_size,
            limit=cfg.anchor_batches, rank=self.rank, world=self.world)
        if resume and rundir.has_checkpoint(self.run_dir):
            self._load_checkpoint()
            if self.step > cfg.steps:
                raise NasUsageError(
                    f"{self.run_dir} is at step {self.step}, past --steps {cfg.steps}; "
                    "give a --steps of at least that"
                )
        self._commit_run_dir()

    # ---- run directory ------------------------------------------------------------------------
    def _check_run_dir(self, cfg: TrainConfig, resume: bool, given: set[str]) -> TrainConfig:
        """Validate everything before anything is written: a new run's config, or a resume's
        options against the stored ones. ``config.json`` is written by ``_commit_run_dir`` once
        the task, model and engine are built, so a failed start leaves no run behind."""
        config_path = self.run_dir / rundir.CONFIG
        self._fresh = not config_path.exists()
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise NasUsageError(f"--out {self.run_dir} is a file, not a folder; choose another --out")
        if not self._fresh:
            if not resume:
                raise NasUsageError(
                    f"{self.run_dir} already holds a run; pass --resume to continue it "
                    "or choose another --out"
                )
            stored = load_run_config(self.run_dir)
            if stored.get("space") != cfg.space:
                raise NasUsageError(
                    f"{self.run_dir} holds a run of space '{stored.get('space')}', not '{cfg.space}'; "
                    "resume it with the same space or choose another --out"
                )
            resumed = _resumed_config(self.run_dir, TrainConfig.from_dict(stored["train"]), cfg, given)
            self.ds_config = _resumed_ds_config(self.run_dir, stored, resumed)
            if resumed.to_dict() != stored["train"]:
                self._pending_config = {**stored, "train": resumed.to_dict()}
                if resumed.steps != stored["train"].get("steps"):
                    self._pending_config["extended"] = [*stored.get("extended", []), {
                        "from_steps": stored["train"].get("steps"), "to_steps": resumed.steps}]
            return resumed
        cfg = cfg.resolve()
        from .._registry import SPACES
        from ..tasks import TASKS

        space_cls = SPACES.get(cfg.space)
        space_cls(cfg.preset)  # unknown preset -> usage error before anything is written
        if cfg.task is None:
            cfg.task = space_cls.default_task
        TASKS.get(cfg.task)
        if cfg.arch is not None:
            space_cls(cfg.preset).parse(cfg.arch)
        self.ds_config = resolve_ds_config(load_ds_config(cfg.ds_config), cfg, dist.world_size())
        if dist.is_main():
            self._created = _make_dir(self.run_dir)
        dist.barrier()
        self._pending_config = {
            "space": cfg.space, "preset": cfg.preset, "task": cfg.task, "mode": cfg.mode,
            "seed": cfg.seed, "train": cfg.to_dict(), "versions": versions(),
            "world_size": dist.world_size(),
        }
        return cfg

    def _commit_run_dir(self) -> None:
        """Write config.json: only now, with the task, model and engine built, is this a run."""
        if self._pending_config is not None and dist.is_main():
            # The DeepSpeed config as resolved (optimizer, lr, schedule lengths, batch split): what
            # the run actually trained with, also when it came from defaults.
            self._pending_config["deepspeed"] = self.ds_config
            atomic_write_json(self.run_dir / rundir.CONFIG, self._pending_config)
        self._pending_config = None
        dist.barrier()

    # ---- checkpoints ---------------------------------------------------------------------------
    def _client_state(self) -> dict[str, Any]:
        return {
            "step": self.step, "elapsed": self.elapsed,
            "sampler": self.sampler.state_dict(),
            "anchor": self.anchor.state_dict() if self.anchor else None,
            "torch_rng": torch.get_rng_state(), "python_rng": list(random.getstate()[1]),
            "space": self.cfg.space, "arch": self.cfg.arch,
        }

    def save_checkpoint(self) -> None:
        ckpt_dir = self.run_dir / rundir.CHECKPOINTS
        tag = f"step{self.step:08d}"
        self.engine.save_checkpoint(str(ckpt_dir), tag=tag, client_state=self._client_state(),
                                    save_latest=False)
        dist.barrier()
        if dist.is_main():
            save_weights(self.engine.module, self.run_dir / rundir.WEIGHTS,
                         {"step": str(self.step), "space": self.cfg.space})
            # Only now does the checkpoint become visible: a crash before this line leaves the
            # previous latest.json pointing at the previous complete checkpoint.
            atomic_write_json(ckpt_dir / rundir.LATEST, {"tag": tag, "step": self.step})
            tags = sorted(p.name for p in ckpt_dir.iterdir() if p.is_dir() and p.name.startswith("step"))
            for old in tags[:-self.cfg.keep_checkpoints]:
                shutil.rmtree(ckpt_dir / old, ignore_errors=True)
        dist.barrier()

    def _load_checkpoint(self) -> None:
        ckpt_dir = self.run_dir / rundir.CHECKPOINTS
        latest = read_json(ckpt_dir / rundir.LATEST, "checkpoint index")
        tag = latest.get("tag")
        if not tag or not (ckpt_dir / tag).is_dir():
            raise NasUsageError(
                f"checkpoint '{tag}' named by {ckpt_dir / rundir.LATEST} is missing; "
                "restore it or start a new run with another --out"
            )
        from ._safe_load import weights_only_loads

        try:
            with weights_only_loads():  # never unpickle arbitrary objects (see _safe_load.py)
                path, client = self.engine.load_checkpoint(str(ckpt_dir), tag=tag)
        except NasUsageError:
            raise
        except Exception as exc:  # a truncated or foreign file
            raise NasUsageError(
                f"checkpoint {ckpt_dir / tag} is corrupt ({type(exc).__name__}: "
                f"{(str(exc).strip().splitlines() or [''])[0][:120]}); "
                "delete it and point latest.json at an older checkpoint, or start a new run"
            ) from None
        if path is None or client is None:
            raise NasUsageError(f"checkpoint {ckpt_dir / tag} could not be loaded; it is incomplete")
        if client.get("space") != self.cfg.space:
            raise NasUsageError(f"checkpoint {ckpt_dir / tag} belongs to space '{client.get('space')}'")
        self.step = int(client["step"])
        self.elapsed = float(client["elapsed"])
        self.sampler.load_state_dict(client["sampler"])
        if self.anchor and client["anchor"]:
            self.anchor.load_state_dict(client["anchor"])
        torch.set_rng_state(client["torch_rng"])
        random.setstate((3, tuple(client["python_rng"]), None))
        if dist.is_main():
            _truncate_metrics(self.run_dir / rundir.METRICS, self.step)

    # ---- scoring -------------------------------------------------------------------------------
    @property
    def batch_stats(self) -> bool:
        return bool(self.space.has_batchnorm)

    def dev_score(self, arch) -> float:
        """The task's own primary dev metric of ``arch`` (``task.metrics``) on the fixed dev batches
        of all ranks (the same value on every rank), signed so that higher is better. The MLM
        objective scores masked-token accuracy; a task without official metrics (``metrics``
        raises NotImplementedError) is scored by negative MSE (regression)."""
        model = self.engine.module
        batches = self.dev_batches
        if self.cfg.objective == "mlm":
            batches = [self._mask(b, 10_000_000 + i) for i, b in enumerate(batches)]
        with scoring_mode(model, self.batch_stats):
            logits, labels = predict(model, arch, batches, self.device)
        if self.cfg.objective == "mlm":
            keep = labels != -100
            correct = float((logits.argmax(-1)[keep] == labels[keep]).sum())
            total = float(keep.sum())
            correct, total = dist.all_reduce_sum([correct, total])
            return correct / max(total, 1.0)
        logits, labels = dist.all_gather_cat(logits, labels)
        try:
            value = float(self.task.metrics(logits, labels)[self.task.primary_metric])
        except NotImplementedError:
            return -float(((logits.squeeze(-1) - labels) ** 2).mean()) if len(labels) else 0.0
        if value != value:  # nan (e.g. a correlation of constant predictions): never the better one
            return float("-inf")
        return value if self.task.greater_is_better else -value

    def _mask(self, batch: dict[str, Any], salt: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(self.cfg.seed * 7919 + salt)
        vocab = self.space.config.vocab_size
        special = getattr(self.task, "num_special_tokens", 1)
        return mask_tokens(batch, vocab, vocab - 1, special, g, self.cfg.mlm_probability)

    # ---- training ------------------------------------------------------------------------------
    def _drop_unused_grads(self, arch: tuple) -> None:
        """Options the child did not run get no gradient (DeepSpeed's all-reduce zero-fills them).
        The optimizer already skips zero gradients element by element (_optim.py), which is what
        keeps unused options untouched; with ZeRO off, dropping the gradients of whole unused
        parameters first just saves it that work. (ZeRO 1/2 hold gradients in flat partitions:
        nothing to drop there, the optimizer's skip does it all.)"""
        if self.zero_stage > 0:
            return
        for token, options in zip(arch, self._slot_params):
            for option, params in options.items():
                if option != token:
                    for p in params:
                        p.grad = None

    def train_step(self, arch: tuple, micro_batches: list[dict[str, Any]]) -> dict[str, Any]:
        cfg = self.cfg
        lam = 0.0
        anchor_arch = self.anchor.arch if self.anchor else None
        if anchor_arch is not None:
            lam = align_weight(self.step, cfg.align_lambda, cfg.align_warmup, cfg.align_ramp)
        use_align = lam > 0 and anchor_arch is not None and tuple(anchor_arch) != tuple(arch)
        hidden = use_align and cfg.align == "hidden"
        totals = {"loss": 0.0, "task_loss": 0.0, "align_loss": 0.0}
        self.engine.train()
        for m, batch in enumerate(micro_batches):
            batch = to_device(batch, self.device)
            if cfg.objective == "mlm":
                batch = self._mask(batch, (self.step * 64 + m) * 64 + self.rank)
            out = forward(self.engine, arch, batch, return_hidden=hidden)
            logits, hiddens = out if hidden else (out, None)
            task_loss = self.task_loss(logits, batch["labels"])
            loss = task_loss
            align = torch.zeros(())
            if use_align:
                with scoring_mode(self.engine.module, self.batch_stats):
                    a_out = forward(self.engine.module, anchor_arch, batch, return_hidden=hidden)
                a_logits, a_hiddens = a_out if hidden else (a_out, None)
                mask = batch["labels"] != -100 if cfg.objective == "mlm" else None
                problem = "classification" if cfg.objective == "mlm" else self.task.problem
                align = alignment_loss(cfg.align, problem, (logits, hiddens), (a_logits, a_hiddens),
                                       cfg.align_temperature, mask)
                loss = task_loss + lam * align
            self.engine.backward(loss)
            if self.engine.is_gradient_accumulation_boundary():
                self._drop_unused_grads(arch)
            self.engine.step()
            n = len(micro_batches)
            totals["loss"] += float(loss.detach()) / n
            totals["task_loss"] += float(task_loss.detach()) / n
            totals["align_loss"] += float(align.detach()) / n
        keys = list(totals)
        reduced = dist.all_reduce_sum([totals[k] for k in keys])
        return {k: v / self.world for k, v in zip(keys, reduced)} | {"lambda": lam}

    def task_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = logits.float()  # the loss in fp32 also when the model runs in bf16/fp16
        if self.cfg.objective == "mlm":
            return torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
        return self.task.loss(logits, labels)

    def maybe_update_anchor(self, arch: tuple) -> dict[str, Any]:
        if not self.anchor or (self.step + 1) % self.cfg.anchor_every:
            return {}
        child_score = self.dev_score(arch)
        anchor_score = self.dev_score(self.anchor.arch) if self.anchor.arch else float("-inf")
        replaced = self.anchor.maybe_replace(arch, child_score, anchor_score)
        # All ranks computed identical scores; rank 0's decision is authoritative all the same.
        state = dist.broadcast(self.anchor.state_dict())
        self.anchor.load_state_dict(state)
        return {"child_dev": child_score, "anchor_dev": anchor_score, "anchor_replaced": replaced}

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        accum = self.engine.gradient_accumulation_steps()
        loader = train_loader(
            self.task.dataset("train"), self.task.collate, self.ds_config["train_batch_size"],
            accum, cfg.seed, self.rank, self.world, self.step, cfg.steps, cfg.num_workers)
        if dist.is_main() and self.step == 0:  # rows of a start that died before its first checkpoint
            _truncate_metrics(self.run_dir / rundir.METRICS, 0)
        metrics_file = open(self.run_dir / rundir.METRICS, "a") if dist.is_main() else None
        monitor = _monitor(self.run_dir, cfg, self.step) if dist.is_main() else None
        progress = _progress(self.show_progress and dist.is_main())
        t0 = time.time() - self.elapsed
        # A resume with nothing left to do reports the last recorded step, not an empty one.
        last = _last_row(self.run_dir / rundir.METRICS) if dist.is_main() and self.step else {}
        try:
            with progress:
                task_id = progress.add_task("train", total=cfg.steps, completed=self.step,
                                            loss_text=_loss_text(last.get("loss")))
                micro = []
                for batch in loader:
                    micro.append(batch)
                    if len(micro) < accum:
                        continue
                    arch = dist.broadcast(self.sampler.next())
                    stats = self.train_step(tuple(arch), micro)
                    micro = []
                    stats.update(self.maybe_update_anchor(tuple(arch)))
                    self.elapsed = time.time() - t0
                    self.step += 1
                    last = self._record(metrics_file, monitor, arch, stats)
                    progress.update(task_id, completed=self.step, loss_text=_loss_text(stats["loss"]))
                    if self.step % cfg.save_every == 0 or self.step == cfg.steps:
                        self.save_checkpoint()
        except NasUsageError as exc:  # e.g. an unreadable image, met by a data-loader worker
            raise NasUsageError(_worker_message(str(exc))) from None
        finally:
            if metrics_file:
                metrics_file.close()
            if monitor:
                monitor.close()
        summary = {"steps": self.step, "seconds": round(self.elapsed, 2), "final": last,
                   "anchor": self.space.encode(self.anchor.arch) if self.anchor and self.anchor.arch else None,
                   "anchor_replacements": self.anchor.replacements if self.anchor else None,
                   "coverage": self.sampler.coverage(),
                   # config.json records the device a run started on; a resumed run may end elsewhere
                   "device": rundir.device_name()}
        if dist.is_main():
            atomic_write_json(self.run_dir / rundir.TRAIN_SUMMARY, summary)
        return summary

    def _record(self, metrics_file, monitor, arch, stats) -> dict[str, Any]:
        row = {"step": self.step, "time": round(self.elapsed, 3), "loss": stats["loss"],
               "task_loss": stats["task_loss"], "arch": self.space.encode(arch),
               "lr": float(self.engine.get_lr()[0]), "world_size": self.world}
        if self.anchor is not None:
            row.update(anchor=self.space.encode(self.anchor.arch) if self.anchor.arch else None,
                       align_loss=stats["align_loss"], align_lambda=stats["lambda"])
            for key in ("child_dev", "anchor_dev", "anchor_replaced"):
                if key in stats:
                    row[key] = stats[key]
        if metrics_file:
            metrics_file.write(json.dumps(row) + "\n")
            metrics_file.flush()
        if monitor:
            monitor.write(self.step, row)
        return row


def _loss_text(loss: Any) -> str:
    """``loss 0.6931``; blank before the first step (never "loss nan" for a step not taken)."""
    return "" if loss is None else f"loss {float(loss):.4f}"


def _worker_message(text: str) -> str:
    """A DataLoader worker's error arrives as "Caught X in DataLoader worker ... Original
    Traceback ..."; the user needs its last line only."""
    if "Original Traceback" not in text:
        return text
    last = [line for line in text.splitlines() if line.strip()][-1]
    return last.split("NasUsageError: ", 1)[-1]


def _last_row(path: Path) -> dict[str, Any]:
    """The last complete row of metrics.jsonl ({} when there is none)."""
    if not path.exists():
        return {}
    for line in reversed(path.read_text().splitlines()):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            return row
    return {}


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop rows written after the checkpoint we resume from (they will be recomputed)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (json.JSONDecodeError, KeyError):
            break  # a torn last line from a kill -9
    from nas._rundir import atomic_write_text

    atomic_write_text(path, "".join(f"{line}\n" for line in keep))


class _Monitor:
    """Scalars through DeepSpeed's monitor (CSV, and TensorBoard when asked)."""

    def __init__(self, run_dir: Path, tensorboard: bool, step: int = 0):
        from deepspeed.monitor.config import get_monitor_config
        from deepspeed.monitor.monitor import MonitorMaster

        conf = {"csv_monitor": {"enabled": True, "output_path": str(run_dir / "monitor"), "job_name": "train"}}
        if tensorboard:
            conf["tensorboard"] = {"enabled": True, "output_path": str(run_dir / "monitor"), "job_name": "train"}
        self.master = MonitorMaster(get_monitor_config(conf))
        # A resume continues each CSV: rows after the checkpoint are dropped (they will be
        # recomputed) and the header is not written again.
        csv = getattr(self.master, "csv_monitor", None)
        folder = run_dir / "monitor" / "train"
        if csv is not None and folder.is_dir():
            for path in sorted(folder.glob("*.csv")):
                _truncate_csv(path, step)
                if path.stem not in csv.filenames:
                    csv.filenames.append(path.stem)

    def write(self, step: int, row: dict[str, Any]) -> None:
        events = [(f"Train/{k}", float(v), step) for k, v in row.items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step"]
        self.master.write_events(events)

    def close(self) -> None:
        pass


def _truncate_csv(path: Path, step: int) -> None:
    """Keep a monitor CSV's header and its rows up to ``step``."""
    lines = path.read_text().splitlines()
    keep = lines[:1]
    for line in lines[1:]:
        head, _, value = line.partition(",")
        try:
            if int(head) > step or not value:
                break
        except ValueError:
            break  # a torn last line from a kill -9
        keep.append(line)
    if keep != lines:
        from nas._rundir import atomic_write_text

        atomic_write_text(path, "".join(f"{line}\r\n" for line in keep))  # csv.writer's line ends


def _monitor(run_dir: Path, cfg: TrainConfig, step: int = 0):
    try:
        return _Monitor(run_dir, cfg.tensorboard, step)
    except ImportError:
        return None


def _progress(enabled: bool):
    """The training bar, on a terminal only: a log file gets no bar frames (its last frame would
    otherwise sit above an error, which stays one line). A step's loss shows once there is one."""
    from rich.progress import TextColumn

    from nas._console import err_console
    from nas.report._progress import make_progress

    loss = TextColumn("{task.fields[loss_text]}")
    return make_progress(loss, unit="steps", enabled=enabled and err_console.is_terminal)


def train(cfg: TrainConfig, resume: bool = False, show_progress: bool = True,
          given: Optional[Iterable[str]] = None) -> dict[str, Any]:
    """Train a super-net (or, in mode ``fixed``, one child) into ``cfg.out``.

    With ``resume``, the settings in ``given`` (default: those that differ from TrainConfig's
    defaults) are checked against the stored run: a larger ``steps`` extends it, ``save_every``,
    ``keep_checkpoints``, ``num_workers``, ``tensorboard`` and ``data_dir`` may change, any other
    difference is a usage error."""
    return Trainer(cfg, resume=resume, show_progress=show_progress, given=given).run()
