"""``glue:<task>``: the nine GLUE tasks with GLUE's official metrics, read offline from TSV files.

Sources, in order:

1. ``data_dir``: the GLUE root (holding ``SST-2/``, ``MRPC/``...) or one task's folder. Files are
   ``train.tsv``, ``dev.tsv`` (MNLI: ``dev_matched.tsv`` and ``dev_mismatched.tsv``) in either
   layout, detected from the header: the original GLUE release (e.g. ``sentence<TAB>label``,
   MRPC's ``Quality  #1 ID  #2 ID  #1 String  #2 String``, RTE/QNLI text labels such as
   ``not_entailment``, STS-B's score in the ``score`` column, CoLA without a header) or a Hugging
   Face ``datasets`` export (``sentence1 sentence2 label idx`` with integer labels, ``premise
   hypothesis``...). Files are read with quoting off (GLUE sentences hold literal quote
   characters) and a UTF-8 BOM is skipped. A row with the wrong number of fields is an error
   naming file and line, unless ``skip_bad_rows=true`` (the default for QQP, whose GLUE release
   has a few such rows; ``describe()`` counts what was dropped).
2. Else ``datasets.load_dataset("nyu-mll/glue", task)`` (Hub or local cache; ``HF_HUB_OFFLINE`` /
   ``HF_DATASETS_OFFLINE`` are honoured).

Splits: ``train``, ``dev`` (GLUE dev; MNLI dev-matched), ``test`` and, for MNLI,
``dev_mismatched``. GLUE's test labels are secret, so ``test`` is a labelled test file when one
exists (a ``test.tsv`` with a label column, or MRPC's ``msr_paraphrase_test.txt``) and otherwise
a held-out part of train (``test_fraction``, default 10%, chosen by the task seed), which is then
removed from ``train``.

Text is encoded as ``[CLS] a [SEP] b [SEP]`` with a WordPiece trained on the training split
(cached in ``run_dir/tokenizer/``) or with ``tokenizer=NAME_OR_PATH`` (Hugging Face); batches are
padded to their longest row.
"""

from __future__ import annotations

import csv
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from .._errors import NasUsageError
from .._words import parse_bool
from . import _metrics, register_task
from ._base import Task
from ._tokenizer import first_line, pretrained_encoder, wordpiece_encoder


@dataclass(frozen=True)
class GlueSpec:
    name: str
    folder: str  # folder name in the GLUE release
    text_a: tuple[str, ...]  # accepted header names (GLUE release first, then HF export)
    text_b: tuple[str, ...] | None
    label: tuple[str, ...]
    classes: tuple[str, ...] | None  # label names in Hugging Face id order; None: regression
    metrics: tuple[str, ...]
    layout: str  # for error messages
    headerless: tuple[int, int] | None = None  # (text, label) columns of header-less files
    dev_files: tuple[str, ...] = ("dev.tsv", "validation.tsv")
    extra_splits: dict[str, tuple[str, ...]] = field(default_factory=dict)
    test_files: tuple[str, ...] = ("test.tsv",)
    malformed_rows: bool = False  # the GLUE release itself has malformed rows (QQP): skip by default

    @property
    def primary(self) -> str:
        return self.metrics[0]


_PAIR = "sentence1<TAB>sentence2<TAB>label"
SPECS = {s.name: s for s in [
    GlueSpec("cola", "CoLA", ("sentence",), None, ("label",), ("unacceptable", "acceptable"),
             ("mcc", "accuracy"), "GLUE: no header, source<TAB>label<TAB>judgement<TAB>sentence; "
             "HF export: sentence<TAB>label<TAB>idx", headerless=(3, 1)),
    GlueSpec("sst2", "SST-2", ("sentence",), None, ("label",), ("negative", "positive"),
             ("accuracy",), "header sentence<TAB>label (HF export may add idx)"),
    GlueSpec("mrpc", "MRPC", ("#1 String", "sentence1"), ("#2 String", "sentence2"),
             ("Quality", "label"), ("not_equivalent", "equivalent"), ("f1", "accuracy"),
             "GLUE: Quality<TAB>#1 ID<TAB>#2 ID<TAB>#1 String<TAB>#2 String; HF export: "
             f"{_PAIR}<TAB>idx", test_files=("test.tsv", "msr_paraphrase_test.txt")),
    GlueSpec("qqp", "QQP", ("question1",), ("question2",), ("is_duplicate", "label"),
             ("not_duplicate", "duplicate"), ("f1", "accuracy"),
             "GLUE: id<TAB>qid1<TAB>qid2<TAB>question1<TAB>question2<TAB>is_duplicate; HF export: "
             "question1<TAB>question2<TAB>label<TAB>idx", malformed_rows=True),
    GlueSpec("stsb", "STS-B", ("sentence1",), ("sentence2",), ("score", "label"), None,
             ("pearson_spearman_avg", "pearson", "spearman"),
             "GLUE: index ... sentence1<TAB>sentence2<TAB>score; HF export: "
             f"{_PAIR}<TAB>idx with float labels"),
    GlueSpec("mnli", "MNLI", ("sentence1", "premise"), ("sentence2", "hypothesis"),
             ("gold_label", "label"), ("entailment", "neutral", "contradiction"), ("accuracy",),
             "GLUE: index ... sentence1<TAB>sentence2 ... gold_label; HF export: "
             "premise<TAB>hypothesis<TAB>label<TAB>idx",
             dev_files=("dev_matched.tsv", "validation_matched.tsv"),
             extra_splits={"dev_mismatched": ("dev_mismatched.tsv", "validation_mismatched.tsv")},
             test_files=("test_matched.tsv",)),
    GlueSpec("qnli", "QNLI", ("question",), ("sentence",), ("label",), ("entailment", "not_entailment"),
             ("accuracy",), "index<TAB>question<TAB>sentence<TAB>label (HF export: question<TAB>"
             "sentence<TAB>label<TAB>idx)"),
    GlueSpec("rte", "RTE", ("sentence1",), ("sentence2",), ("label",), ("entailment", "not_entailment"),
             ("accuracy",), f"GLUE: index<TAB>{_PAIR} (text labels); HF export: {_PAIR}<TAB>idx"),
    GlueSpec("wnli", "WNLI", ("sentence1",), ("sentence2",), ("label",), ("not_entailment", "entailment"),
             ("accuracy",), f"GLUE: index<TAB>{_PAIR}; HF export: {_PAIR}<TAB>idx"),
]}
HUB_DATASET = "nyu-mll/glue"


@dataclass
class Rows:
    """One split's raw examples; ``labels`` is None when the file has none (GLUE test files)."""

    a: list[str]
    b: list[str] | None
    labels: list | None
    origin: str
    skipped: int = 0  # malformed rows dropped (skip_bad_rows)

    def subset(self, index) -> "Rows":
        pick = lambda xs: None if xs is None else [xs[i] for i in index]  # noqa: E731
        return Rows(pick(self.a), pick(self.b), pick(self.labels), self.origin)


# ---- reading TSV files --------------------------------------------------------------------------
def _find(columns: list[str], names: tuple[str, ...] | None) -> int | None:
    for name in names or ():
        if name in columns:
            return columns.index(name)
    return None


def read_tsv(path: Path, spec: GlueSpec, skip_bad_rows: bool = False) -> Rows:
    """Rows of one GLUE TSV file in either layout (see the module docstring)."""
    try:
        return _read_tsv(path, spec, skip_bad_rows)
    except UnicodeDecodeError as exc:
        raise NasUsageError(
            f"{path} is not UTF-8 text (it holds the byte {exc.object[exc.start:exc.start + 1]!r}); "
            "GLUE files are UTF-8 TSV: re-encode it (e.g. iconv -t utf-8)"
        ) from None


def _read_tsv(path: Path, spec: GlueSpec, skip_bad_rows: bool) -> Rows:
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        first = next(reader, None)
        if first is None:
            raise NasUsageError(f"{path} is empty; expected GLUE {spec.name} layout: {spec.layout}")
        columns = [c.strip() for c in first]
        ia, ib, il = _find(columns, spec.text_a), _find(columns, spec.text_b), _find(columns, spec.label)
        if ia is None and spec.headerless and len(first) > max(spec.headerless):
            (ia, il), pending = spec.headerless, [first]
        else:
            pending = []
            if ia is None or (spec.text_b and ib is None):
                raise NasUsageError(
                    f"{path}: header '{' | '.join(columns)[:120]}' is not a GLUE {spec.name} file; "
                    f"expected {spec.layout}"
                )
        width = len(first)
        a, b, labels = [], [] if spec.text_b else None, [] if il is not None else None
        unlabelled_line, skipped = None, 0
        for row in itertools.chain(pending, reader):
            line = reader.line_num
            if not row or row == [""]:
                continue
            if len(row) != width:
                if skip_bad_rows:
                    skipped += 1
                    continue
                raise NasUsageError(
                    f"{path}:{line}: expected {width} tab-separated fields, found {len(row)}; fix the "
                    "row or pass the task option skip_bad_rows=true to drop malformed rows"
                )
            a.append(row[ia])
            if b is not None:
                b.append(row[ib])
            if labels is not None:
                labels.append(parse_label(row[il], spec, path, line))
                if labels[-1] == -1 and unlabelled_line is None:
                    unlabelled_line = line
    if labels is not None and labels and all(x == -1 for x in labels):
        labels = None  # an exported test split: labels hidden as -1
    elif unlabelled_line is not None:
        raise NasUsageError(f"{path}:{unlabelled_line}: label -1 (unlabelled) among labelled rows; "
                            f"remove unlabelled rows (valid labels: {_valid(spec)})")
    if not a:
        raise NasUsageError(f"{path} has no data rows; expected GLUE {spec.name} layout: {spec.layout}")
    return Rows(a, b, labels, str(path), skipped)


def _valid(spec: GlueSpec) -> str:
    if spec.classes is None:
        return "a number (similarity score 0-5)"
    return f"0..{len(spec.classes) - 1} or {', '.join(spec.classes)}"


def parse_label(value: str, spec: GlueSpec, path: Any, line: int) -> int | float:
    text = value.strip()
    if spec.classes is None:
        try:
            return float(text)
        except ValueError:
            pass
    elif text in spec.classes:
        return spec.classes.index(text)
    else:
        try:
            number = int(text)
        except ValueError:
            number = None
        if number is not None and (0 <= number < len(spec.classes) or number == -1):
            return number
    raise NasUsageError(f"{path}:{line}: label '{text[:40]}' is not valid for GLUE {spec.name}; "
                        f"valid labels: {_valid(spec)}")


def _task_folder(data_dir: Path, spec: GlueSpec) -> Path:
    if not data_dir.is_dir():
        raise NasUsageError(f"--data-dir {data_dir} is not a directory; pass the GLUE root (holding "
                            f"{spec.folder}/) or the {spec.folder} folder")
    for candidate in (data_dir / spec.folder, data_dir / spec.name, data_dir):
        if (candidate / "train.tsv").is_file():
            return candidate
    raise NasUsageError(
        f"missing {data_dir / spec.folder / 'train.tsv'} (or {data_dir / 'train.tsv'} when "
        f"--data-dir is the task folder); GLUE {spec.name} layout: {spec.layout}"
    )


def read_folder(folder: Path, spec: GlueSpec, skip_bad_rows: bool) -> dict[str, Rows]:
    """train/dev/(labelled test)/extra splits of one task folder; test only when labelled."""
    out = {"train": read_tsv(folder / "train.tsv", spec, skip_bad_rows)}
    for split, names in {"dev": spec.dev_files, **spec.extra_splits}.items():
        path = next((folder / n for n in names if (folder / n).is_file()), None)
        if path is None:
            raise NasUsageError(f"missing {folder / names[0]} (GLUE {spec.name} {split} split); "
                                f"layout: {spec.layout}")
        out[split] = read_tsv(path, spec, skip_bad_rows)
    for name in spec.test_files:
        if (folder / name).is_file():
            rows = read_tsv(folder / name, spec, skip_bad_rows)
            if rows.labels is not None:
                out["test"] = rows
                break
    for split, rows in out.items():
        if split != "test" and rows.labels is None:
            raise NasUsageError(f"{rows.origin} has no label column ({' or '.join(spec.label)}); the "
                                f"{split} split needs labels; layout: {spec.layout}")
    return out


# ---- the Hugging Face Hub -----------------------------------------------------------------------
def _truthy(value: str | None) -> bool:
    return bool(parse_bool(value, default=False))


def read_hub(spec: GlueSpec) -> dict[str, Rows]:
    """The task from ``datasets`` (Hub or cache); failures become one-line usage errors."""
    try:
        import datasets

        if _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("HF_DATASETS_OFFLINE")):
            datasets.config.HF_HUB_OFFLINE = True  # also when set after datasets was imported
            datasets.config.HF_DATASETS_OFFLINE = True
        data = datasets.load_dataset(HUB_DATASET, spec.name)
    except Exception as exc:
        raise NasUsageError(
            f"could not load GLUE {spec.name} from the Hugging Face Hub or its cache "
            f"({type(exc).__name__}: {first_line(exc)}); download GLUE and pass --data-dir DIR "
            f"holding {spec.folder}/train.tsv and {spec.folder}/{spec.dev_files[0]}"
        ) from None
    names = {"train": "train", "dev": "validation_matched" if spec.name == "mnli" else "validation",
             "dev_mismatched": "validation_mismatched", "test": "test_matched" if spec.name == "mnli" else "test"}
    out = {}
    for split, hub_split in names.items():
        if hub_split not in data:
            continue
        d = data[hub_split]
        ia, ib = _find(d.column_names, spec.text_a), _find(d.column_names, spec.text_b)
        labels = list(d["label"])
        rows = Rows(list(d[d.column_names[ia]]), None if ib is None else list(d[d.column_names[ib]]),
                    None if all(x == -1 for x in labels) else labels, f"{HUB_DATASET}/{spec.name}:{hub_split}")
        if rows.labels is not None or split != "test":
            out[split] = rows
    return out


# ---- the task -----------------------------------------------------------------------------------
class TextDataset(Dataset):
    """Encoded rows: variable-length ``input`` and ``token_type_ids``, a scalar ``labels``."""

    def __init__(self, ids: list[list[int]], types: list[list[int]], labels: torch.Tensor):
        self.ids, self.types, self.labels = ids, types, labels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input": torch.tensor(self.ids[index]), "token_type_ids": torch.tensor(self.types[index]),
                "labels": self.labels[index]}


def pad_collate(items: list[dict[str, torch.Tensor]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad ``input`` (with ``pad_id``) and ``token_type_ids`` to the batch's longest row."""
    length = max(len(item["input"]) for item in items)
    ids = torch.full((len(items), length), pad_id, dtype=torch.long)
    types = torch.zeros((len(items), length), dtype=torch.long)
    mask = torch.zeros((len(items), length), dtype=torch.long)
    for i, item in enumerate(items):
        n = len(item["input"])
        ids[i, :n], types[i, :n], mask[i, :n] = item["input"], item["token_type_ids"], 1
    labels = torch.stack([item["labels"] for item in items])
    return {"input": ids, "attention_mask": mask, "token_type_ids": types, "labels": labels}


class GlueTask(Task):
    """A GLUE task (see the module docstring); concrete classes are made per task below."""

    spec: ClassVar[GlueSpec]
    modality = "text"
    uses_data_dir = True
    option_defaults = {"max_len": 128, "vocab_size": 8000, "tokenizer": None, "test_fraction": 0.1,
                       "skip_bad_rows": False}

    def __init__(self, seed: int = 0, data_dir: Any = None, **options: Any):
        super().__init__(seed, data_dir, **options)
        o = self.options
        problems = [
            not 8 <= o["max_len"] <= 4096 and f"max_len={o['max_len']} (use 8..4096)",
            o["vocab_size"] < 100 and f"vocab_size={o['vocab_size']} (use >= 100)",
            not 0 < o["test_fraction"] < 1 and f"test_fraction={o['test_fraction']} (use 0 < f < 1)",
        ]
        problems = [p for p in problems if p]
        if problems:
            raise NasUsageError(f"invalid option(s) for task '{self.name}': {'; '.join(problems)}")
        self.encoder = None
        self.sources: dict[str, str] = {}
        self.skipped_rows: dict[str, int] = {}  # file -> malformed rows dropped
        self._data: dict[str, TextDataset] = {}

    def _load_rows(self) -> dict[str, Rows]:
        spec = self.spec
        if self.data_dir is not None:
            raw = read_folder(_task_folder(self.data_dir, spec), spec, self.options["skip_bad_rows"])
        else:
            raw = read_hub(spec)
        self.skipped_rows = {rows.origin: rows.skipped for rows in raw.values() if rows.skipped}
        if "test" not in raw:  # GLUE test labels are secret: hold out part of train
            n = len(raw["train"].a)
            order = np.random.default_rng(self.seed).permutation(n)
            n_test = max(1, round(n * self.options["test_fraction"]))
            if n - n_test < 1:
                raise NasUsageError(f"{raw['train'].origin} has only {n} row(s): too few to hold out a "
                                    "test split; add training rows or a labelled test file")
            test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
            origin = raw["train"].origin
            raw["test"] = raw["train"].subset(test)
            raw["test"].origin = f"{origin} (held-out {self.options['test_fraction']:g}, seed {self.seed})"
            raw["train"] = raw["train"].subset(train)
        return raw

    def _prepare(self, run_dir: Path | None) -> None:
        raw = self._load_rows()
        o = self.options
        if o["tokenizer"]:
            self.encoder = pretrained_encoder(o["tokenizer"])
        else:
            train = raw["train"]
            texts = train.a + (train.b or [])
            fingerprint = {"task": self.name, "vocab_size": o["vocab_size"], "seed": self.seed,
                           "train_examples": len(train.a)}
            self.encoder = wordpiece_encoder(run_dir, texts, o["vocab_size"], fingerprint)
            from ._tokenizer import SPECIAL_TOKENS

            self.num_special_tokens = len(SPECIAL_TOKENS)  # ids 0..4: never masked for MLM
        dtype = torch.float32 if self.problem == "regression" else torch.long
        for split in self.splits:
            rows = raw[split]
            ids, types = self.encoder.encode(rows.a, rows.b, o["max_len"])
            self._data[split] = TextDataset(ids, types, torch.tensor(rows.labels, dtype=dtype))
            self.sources[split] = rows.origin

    def _dataset(self, split: str) -> TextDataset:
        return self._data[split]

    def collate(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return pad_collate(items, self.encoder.pad_id if self.encoder else 0)

    def space_overrides(self) -> dict[str, Any]:
        self.prepare()
        max_len = self.options["max_len"]
        positions = max(max_len, 128)
        model_max = getattr(self.encoder.tokenizer, "model_max_length", 0) or 0
        if 0 < model_max <= 4096:  # keep a pretrained model's position table (BERT: 512)
            positions = max(positions, model_max)
        return {"vocab_size": self.encoder.vocab_size, "num_classes": self.num_outputs,
                "max_positions": positions}

    def metrics(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        if self.problem == "regression":
            return _metrics.regression(logits.reshape(-1), labels)
        return _metrics.classification(logits, labels, self.spec.metrics)

    def describe(self) -> dict[str, Any]:
        out = {**super().describe(), "metrics": list(self.spec.metrics),
               "labels": list(self.spec.classes) if self.spec.classes else None}
        if self._data:
            out["sizes"] = {s: len(d) for s, d in self._data.items()}
            out["sources"] = dict(self.sources)
            out["tokenizer"] = self.encoder.description
            if self.skipped_rows:
                out["skipped_malformed_rows"] = dict(self.skipped_rows)
        return out


def _make(spec: GlueSpec) -> type[GlueTask]:
    regression = spec.classes is None
    attrs = {
        "__module__": __name__,
        "__doc__": f"GLUE {spec.folder} ({', '.join(spec.metrics)}), from --data-dir TSVs or the Hub.",
        "spec": spec,
        "problem": "regression" if regression else "classification",
        "num_outputs": 1 if regression else len(spec.classes),
        "primary_metric": spec.primary,
        "splits": ("train", "dev", "test", *spec.extra_splits),
        "option_defaults": {**GlueTask.option_defaults, "skip_bad_rows": spec.malformed_rows},
    }
    cls = type(f"Glue_{spec.name}", (GlueTask,), attrs)
    cls.__qualname__ = cls.__name__
    return register_task(f"glue:{spec.name}")(cls)


GLUE_TASKS = {name: _make(spec) for name, spec in SPECS.items()}
