"""GLUE tasks on tiny TSV fixtures in both layouts: rows, labels, splits, metrics, tokenizer, errors."""

from __future__ import annotations

import time

import pytest
import torch

from nas import NasUsageError
from nas.tasks import get_task
from nas.tasks._glue import SPECS, read_tsv

BOM = "\ufeff"
WORDS = "the movie was good bad fine awful great plot actor scene story long short funny dull".split()


def _sentence(i: int) -> str:
    return " ".join(WORDS[(i * k) % len(WORDS)] for k in (1, 3, 7, 11))


def write(path, header, rows, bom=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ([header] if header else []) + ["\t".join(map(str, r)) for r in rows]
    path.write_text((BOM if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def sst2(root, n_train=20, test=False):
    rows = [(_sentence(i), i % 2) for i in range(n_train)]
    rows[3] = ('he said "it is "great and " ok', 1)  # unbalanced quotes are literal in GLUE
    write(root / "SST-2" / "train.tsv", "sentence\tlabel", rows, bom=True)
    write(root / "SST-2" / "dev.tsv", "sentence\tlabel", [(_sentence(i + 50), i % 2) for i in range(4)])
    if test:
        write(root / "SST-2" / "test.tsv", "sentence\tlabel", [(_sentence(i + 90), 1) for i in range(3)])
    return root


MRPC_HEADER = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"


def mrpc(root):
    rows = [(i % 2, 100 + i, 200 + i, _sentence(i), _sentence(i + 1)) for i in range(10)]
    rows[0] = (1, 1, 2, 'He said the "pie business doesn\'t fit.', '"The pie business does not fit.')
    write(root / "MRPC" / "train.tsv", MRPC_HEADER, rows, bom=True)
    write(root / "MRPC" / "dev.tsv", MRPC_HEADER, rows[:4], bom=True)
    write(root / "MRPC" / "test.tsv", "index\t#1 ID\t#2 ID\t#1 String\t#2 String",
          [(i, 1, 2, "a", "b") for i in range(3)])  # GLUE test: no labels, skipped
    write(root / "MRPC" / "msr_paraphrase_test.txt", MRPC_HEADER, rows[:5], bom=True)
    return root


def test_sst2_glue_layout_with_bom_quotes_and_held_out_test(tmp_path):
    root = sst2(tmp_path / "glue")
    task = get_task("glue:sst2", data_dir=root).prepare(tmp_path / "run")
    sizes = task.describe()["sizes"]
    assert sizes == {"train": 18, "dev": 4, "test": 2}  # 10% of train held out
    rows = read_tsv(root / "SST-2" / "train.tsv", SPECS["sst2"])
    assert rows.a[3] == 'he said "it is "great and " ok' and rows.labels[:4] == [0, 1, 0, 1]
    assert "held-out 0.1, seed 0" in task.describe()["sources"]["test"]
    # the seed picks the held-out rows, reproducibly
    labels = lambda t: t.dataset("test").labels.tolist()  # noqa: E731
    again = get_task("glue:sst2", data_dir=root).prepare()
    assert again.dataset("test").ids == task.dataset("test").ids
    assert again.encoder.tokenizer.get_vocab() == task.encoder.tokenizer.get_vocab()  # deterministic
    others = [get_task("glue:sst2", seed=s, data_dir=root).prepare().dataset("test").ids for s in (1, 2, 3)]
    assert any(o != task.dataset("test").ids for o in others)
    assert labels(task) == labels(again)


def test_labelled_test_file_is_used_when_present(tmp_path):
    task = get_task("glue:sst2", data_dir=sst2(tmp_path, test=True) / "SST-2").prepare()  # task folder
    assert task.describe()["sizes"] == {"train": 20, "dev": 4, "test": 3}
    assert task.describe()["sources"]["test"].endswith("test.tsv")


def test_wordpiece_is_trained_capped_cached_and_reused(tmp_path):
    root, run = sst2(tmp_path / "glue"), tmp_path / "run"
    task = get_task("glue:sst2", data_dir=root).prepare(run)
    path = run / "tokenizer" / "tokenizer.json"
    assert path.is_file() and task.describe()["tokenizer"]["source"] == str(path)
    vocab = task.space_overrides()["vocab_size"]
    assert 20 < vocab < 200  # capped by the tiny data, not 8000
    tok = task.encoder.tokenizer
    enc = tok.encode("The MOVIE", "was good")
    assert enc.tokens == ["[CLS]", "the", "movie", "[SEP]", "was", "good", "[SEP]"]  # lowercased pair
    assert enc.type_ids == [0, 0, 0, 0, 1, 1, 1] and tok.token_to_id("[PAD]") == 0
    mtime = path.stat().st_mtime_ns
    again = get_task("glue:sst2", data_dir=root).prepare(run)
    assert path.stat().st_mtime_ns == mtime and again.encoder.vocab_size == vocab
    shared = get_task("glue:sst2", data_dir=root, tokenizer=str(path)).prepare(tmp_path / "run2")
    assert shared.dataset("train").ids == task.dataset("train").ids  # another run's tokenizer.json
    assert shared.describe()["tokenizer"]["source"] == str(path)
    with pytest.raises(NasUsageError, match="was trained for .*glue:sst2.*use a new run directory"):
        get_task("glue:mrpc", data_dir=mrpc(tmp_path / "glue")).prepare(run)


def test_collate_pads_and_fits_the_bert_space(tmp_path):
    task = get_task("glue:mrpc", data_dir=mrpc(tmp_path), max_len=16).prepare()
    items = [task.dataset("train")[i] for i in range(3)]
    batch = task.collate(items)
    lengths = [len(item["input"]) for item in items]
    assert batch["input"].shape == (3, max(lengths)) and max(lengths) <= 16
    assert batch["attention_mask"].sum(1).tolist() == lengths
    assert (batch["input"][batch["attention_mask"] == 0] == 0).all()
    assert batch["token_type_ids"].max() == 1 and batch["labels"].dtype == torch.long
    from nas import get_space
    from nas.tasks import model_kwargs

    overrides = task.space_overrides()
    assert overrides["num_classes"] == 2 and overrides["max_positions"] >= 16
    child = get_space("bert", "tiny", **overrides).build_child("mha2,ffn128," * 3 + "conv3,id")
    assert child(batch["input"], **model_kwargs(batch)).shape == (3, 2)


def test_mrpc_exact_glue_layout_metrics_and_labelled_test(tmp_path):
    task = get_task("glue:mrpc", data_dir=mrpc(tmp_path)).prepare()
    assert task.describe()["sizes"] == {"train": 10, "dev": 4, "test": 5}
    assert task.describe()["sources"]["test"].endswith("msr_paraphrase_test.txt")
    rows = read_tsv(tmp_path / "MRPC" / "train.tsv", SPECS["mrpc"])
    assert rows.b[0] == '"The pie business does not fit.' and rows.labels[:3] == [1, 1, 0]
    assert task.primary_metric == "f1"
    logits = torch.nn.functional.one_hot(torch.tensor([1, 1, 0, 0]), 2).float()
    m = task.metrics(logits, torch.tensor([1, 0, 0, 1]))
    assert m == {"f1": 0.5, "accuracy": 0.5}


@pytest.mark.parametrize("layout", ["glue", "hf"])
def test_rte_both_layouts_give_the_same_labels(tmp_path, layout):
    labels = ["entailment", "not_entailment", "not_entailment", "entailment"] * 3
    if layout == "glue":
        rows = [(i, _sentence(i), _sentence(i + 2), lab) for i, lab in enumerate(labels)]
        header = "index\tsentence1\tsentence2\tlabel"
    else:
        rows = [(_sentence(i), _sentence(i + 2), int(lab != "entailment"), i) for i, lab in enumerate(labels)]
        header = "sentence1\tsentence2\tlabel\tidx"
    write(tmp_path / "RTE" / "train.tsv", header, rows)
    write(tmp_path / "RTE" / "dev.tsv", header, rows[:4])
    task = get_task("glue:rte", data_dir=tmp_path, test_fraction=0.25).prepare()
    assert task.dataset("dev").labels.tolist() == [0, 1, 1, 0]
    assert task.describe()["sizes"] == {"train": 9, "dev": 4, "test": 3}
    assert task.dataset("dev").ids[0][0] == task.encoder.tokenizer.token_to_id("[CLS]")


STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"


def test_stsb_is_regression_with_pearson_and_spearman(tmp_path):
    rows = [(i, "main-news", "f", "2012", i, "none", "none", _sentence(i), _sentence(i + 1), i * 0.5)
            for i in range(10)]
    write(tmp_path / "STS-B" / "train.tsv", STSB_HEADER, rows)
    write(tmp_path / "STS-B" / "dev.tsv", STSB_HEADER, rows[:5])
    task = get_task("glue:stsb", data_dir=tmp_path).prepare()
    assert (task.problem, task.num_outputs, task.primary_metric) == ("regression", 1, "pearson_spearman_avg")
    assert task.space_overrides()["num_classes"] == 1
    dev = task.dataset("dev")
    assert dev.labels.dtype == torch.float32 and dev.labels.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    preds = torch.tensor([[0.0], [1.0], [2.0], [3.0], [2.5]])
    m = task.metrics(preds, dev.labels)
    assert m["spearman"] == pytest.approx(0.9) and m["pearson"] == pytest.approx(0.9191, abs=1e-4)
    assert m["pearson_spearman_avg"] == pytest.approx((m["pearson"] + m["spearman"]) / 2)
    assert task.loss(preds, dev.labels).item() == pytest.approx(((preds.squeeze(1) - dev.labels) ** 2).mean().item())
    assert task.metrics(torch.ones(5, 1), dev.labels)["pearson"] == 0.0  # undefined -> no skill


def test_cola_headerless_glue_and_mcc(tmp_path):
    rows = [("gj04", i % 2, "" if i % 2 else "*", _sentence(i)) for i in range(10)]
    write(tmp_path / "CoLA" / "train.tsv", None, rows)
    write(tmp_path / "CoLA" / "dev.tsv", None, rows[:6])
    task = get_task("glue:cola", data_dir=tmp_path).prepare()
    assert task.describe()["sizes"] == {"train": 9, "dev": 6, "test": 1}  # first row is data
    assert task.dataset("dev").labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert task.primary_metric == "mcc"
    logits = torch.nn.functional.one_hot(torch.tensor([0, 1, 0, 1, 1, 1]), 2).float()
    m = task.metrics(logits, task.dataset("dev").labels)
    assert m["mcc"] == pytest.approx(6 / 72 ** 0.5) and m["accuracy"] == pytest.approx(5 / 6)


MNLI_HEADER = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
               "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label")


def test_mnli_matched_and_mismatched_dev(tmp_path):
    names = ["entailment", "neutral", "contradiction"]
    rows = [(i, 1, 2, "fiction", "(x)", "(y)", "(X)", "(Y)", _sentence(i), _sentence(i + 5), names[i % 3],
             names[i % 3]) for i in range(12)]
    write(tmp_path / "MNLI" / "train.tsv", MNLI_HEADER, rows)
    write(tmp_path / "MNLI" / "dev_matched.tsv", MNLI_HEADER, rows[:3])
    write(tmp_path / "MNLI" / "dev_mismatched.tsv", MNLI_HEADER, rows[1:5])
    task = get_task("glue:mnli", data_dir=tmp_path).prepare()
    assert task.splits == ("train", "dev", "test", "dev_mismatched") and task.num_outputs == 3
    assert task.dataset("dev").labels.tolist() == [0, 1, 2]
    assert task.dataset("dev_mismatched").labels.tolist() == [1, 2, 0, 1]
    logits = torch.nn.functional.one_hot(torch.tensor([1, 2, 0, 0]), 3).float()
    assert task.metrics(logits, task.dataset("dev_mismatched").labels) == {"accuracy": 0.75}
    # the Hugging Face export layout of MNLI
    hf = [(_sentence(i), _sentence(i + 5), i % 3, i) for i in range(12)]
    for name, part in (("train.tsv", hf), ("dev_matched.tsv", hf[:3]), ("dev_mismatched.tsv", hf[1:5])):
        write(tmp_path / "hf" / name, "premise\thypothesis\tlabel\tidx", part)
    hf_task = get_task("glue:mnli", data_dir=tmp_path / "hf").prepare()
    assert hf_task.dataset("dev_mismatched").labels.tolist() == [1, 2, 0, 1]


# ---- errors -------------------------------------------------------------------------------------
def test_missing_files_name_the_expected_path(tmp_path):
    with pytest.raises(NasUsageError, match=r"missing .*SST-2/train\.tsv .*sentence<TAB>label"):
        get_task("glue:sst2", data_dir=tmp_path).prepare()
    write(tmp_path / "RTE" / "train.tsv", "sentence1\tsentence2\tlabel\tidx", [("a", "b", 0, 0)] * 3)
    with pytest.raises(NasUsageError, match=r"missing .*RTE/dev\.tsv \(GLUE rte dev split\)"):
        get_task("glue:rte", data_dir=tmp_path).prepare()
    write(tmp_path / "RTE" / "dev.tsv", "sentence1\tsentence2\tlabel\tidx", [])
    with pytest.raises(NasUsageError, match=r"RTE/dev\.tsv has no data rows"):
        get_task("glue:rte", data_dir=tmp_path).prepare()
    with pytest.raises(NasUsageError, match="is not a directory"):
        get_task("glue:rte", data_dir=tmp_path / "nope").prepare()


@pytest.mark.parametrize("task_name, header, row, valid", [
    ("glue:sst2", "sentence\tlabel", ("fine", 7), "0..1 or negative, positive"),
    ("glue:rte", "index\tsentence1\tsentence2\tlabel", (1, "a", "b", "maybe"), "0..1 or entailment, not_entailment"),
    ("glue:stsb", STSB_HEADER, (1, "g", "f", "y", 1, "s", "s", "a", "b", "high"), "a number"),
])
def test_bad_labels_name_file_line_and_valid_labels(tmp_path, task_name, header, row, valid):
    folder = SPECS[task_name.split(":")[1]].folder
    good = [row[:-1] + ((1,) if task_name != "glue:rte" else ("entailment",))] * 3
    path = write(tmp_path / folder / "train.tsv", header, good + [row])
    write(tmp_path / folder / "dev.tsv", header, good)
    with pytest.raises(NasUsageError, match=rf"{path}:5: label '{row[-1]}' is not valid .*valid labels: {valid}"):
        get_task(task_name, data_dir=tmp_path).prepare()


def test_malformed_rows_are_reported_or_skipped(tmp_path):
    root = sst2(tmp_path)
    path = root / "SST-2" / "train.tsv"
    path.write_text(path.read_text(encoding="utf-8") + "a\tb\t1\n", encoding="utf-8")
    with pytest.raises(NasUsageError, match=rf"{path}:22: expected 2 tab-separated fields, found 3; .*skip_bad_rows=true"):
        get_task("glue:sst2", data_dir=root).prepare()
    task = get_task("glue:sst2", data_dir=root, skip_bad_rows="true").prepare()
    assert task.describe()["sizes"]["train"] == 18
    assert task.describe()["skipped_malformed_rows"] == {str(path): 1}


def test_qqp_drops_malformed_rows_by_default(tmp_path):
    """The GLUE QQP release itself has a few rows with missing fields."""
    header = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"
    rows = [(i, 2 * i, 2 * i + 1, _sentence(i) + "?", _sentence(i + 3) + "?", i % 2) for i in range(10)]
    path = write(tmp_path / "QQP" / "train.tsv", header, rows + [("", "Was it real?", 0)])
    write(tmp_path / "QQP" / "dev.tsv", header, rows[:4])
    task = get_task("glue:qqp", data_dir=tmp_path).prepare()
    assert task.describe()["sizes"] == {"train": 9, "dev": 4, "test": 1}
    assert task.describe()["skipped_malformed_rows"] == {str(path): 1}
    assert task.primary_metric == "f1" and task.options["skip_bad_rows"] is True
    with pytest.raises(NasUsageError, match=r"train\.tsv:12: expected 6 tab-separated fields, found 3"):
        get_task("glue:qqp", data_dir=tmp_path, skip_bad_rows=False).prepare()


def test_wrong_task_folder_is_detected_from_the_header(tmp_path):
    root = sst2(tmp_path)
    with pytest.raises(NasUsageError, match=r"header 'sentence \| label' is not a GLUE rte file; expected GLUE: index"):
        get_task("glue:rte", data_dir=root / "SST-2").prepare()


def test_hub_fallback_fails_fast_offline_with_a_hint(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(NasUsageError, match=r"could not load GLUE rte from the Hugging Face Hub .*--data-dir DIR "
                                            r"holding RTE/train\.tsv"):
        get_task("glue:rte").prepare()
    assert time.monotonic() - start < 20


def test_hub_splits_are_converted(monkeypatch):
    """``load_dataset("nyu-mll/glue", task)`` output (stubbed): validation = dev, test held out."""
    datasets = pytest.importorskip("datasets")
    part = lambda n, label: datasets.Dataset.from_dict(  # noqa: E731
        {"sentence1": [_sentence(i) for i in range(n)], "sentence2": [_sentence(i + 1) for i in range(n)],
         "label": [label(i) for i in range(n)], "idx": list(range(n))})
    hub = datasets.DatasetDict(train=part(20, lambda i: i % 2), validation=part(4, lambda i: 1),
                               test=part(3, lambda i: -1))
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kw: calls.append(args) or hub)
    task = get_task("glue:rte").prepare()
    assert calls == [("nyu-mll/glue", "rte")]
    assert task.describe()["sizes"] == {"train": 18, "dev": 4, "test": 2}
    assert task.describe()["sources"]["dev"] == "nyu-mll/glue/rte:validation"
    assert task.dataset("dev").labels.tolist() == [1, 1, 1, 1]


def test_options_are_validated():
    with pytest.raises(NasUsageError, match=r"max_len=4 \(use 8\.\.4096\)"):
        get_task("glue:sst2", max_len=4)
    with pytest.raises(NasUsageError, match="unknown option"):
        get_task("glue:sst2", lowercase=False)


def test_pretrained_tokenizer_from_a_local_path(tmp_path):
    transformers = pytest.importorskip("transformers")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(WORDS)), "he", "said", '"']
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    transformers.BertTokenizerFast(str(tmp_path / "vocab.txt")).save_pretrained(tmp_path / "tok")
    task = get_task("glue:mrpc", data_dir=mrpc(tmp_path / "glue"), tokenizer=str(tmp_path / "tok")).prepare()
    assert task.space_overrides()["vocab_size"] == len(vocab)
    first = task.dataset("dev")[1]
    assert first["input"][0] == vocab.index("[CLS]") and first["token_type_ids"].max() == 1
    with pytest.raises(NasUsageError, match="could not load tokenizer .*omit --tokenizer"):
        get_task("glue:mrpc", data_dir=tmp_path / "glue", tokenizer=str(tmp_path / "missing")).prepare()


# Every GLUE task in both layouts: (GLUE header or None, GLUE row(i, label), HF header, HF row(i, label)).
ALL_TASKS = {
    "cola": (None, lambda i, y: ("gj04", y, "*" if y == 0 else "", _sentence(i)),
             "sentence\tlabel\tidx", lambda i, y: (_sentence(i), y, i)),
    "sst2": ("sentence\tlabel", lambda i, y: (_sentence(i), y),
             "sentence\tlabel\tidx", lambda i, y: (_sentence(i), y, i)),
    "mrpc": (MRPC_HEADER, lambda i, y: (y, i, i + 1, _sentence(i), _sentence(i + 1)),
             "sentence1\tsentence2\tlabel\tidx", lambda i, y: (_sentence(i), _sentence(i + 1), y, i)),
    "qqp": ("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
            lambda i, y: (i, 2 * i, 2 * i + 1, _sentence(i), _sentence(i + 1), y),
            "question1\tquestion2\tlabel\tidx", lambda i, y: (_sentence(i), _sentence(i + 1), y, i)),
    "stsb": (STSB_HEADER, lambda i, y: (i, "main", "f", "2012", i, "n", "n", _sentence(i), _sentence(i + 1), y * 2.5),
             "sentence1\tsentence2\tlabel\tidx", lambda i, y: (_sentence(i), _sentence(i + 1), y * 2.5, i)),
    "mnli": ("index\tpromptID\tpairID\tgenre\tsentence1\tsentence2\tgold_label",
             lambda i, y: (i, i, f"{i}e", "fiction", _sentence(i), _sentence(i + 1),
                           ("entailment", "neutral", "contradiction")[y]),
             "premise\thypothesis\tlabel\tidx", lambda i, y: (_sentence(i), _sentence(i + 1), y, i)),
    "qnli": ("index\tquestion\tsentence\tlabel",
             lambda i, y: (i, _sentence(i), _sentence(i + 1), ("entailment", "not_entailment")[y]),
             "question\tsentence\tlabel\tidx", lambda i, y: (_sentence(i), _sentence(i + 1), y, i)),
    "rte": ("index\tsentence1\tsentence2\tlabel",
            lambda i, y: (i, _sentence(i), _sentence(i + 1), ("entailment", "not_entailment")[y]),
            "sentence1\tsentence2\tlabel\tidx", lambda i, y: (_sentence(i), _sentence(i + 1), y, i)),
    "wnli": ("index\tsentence1\tsentence2\tlabel", lambda i, y: (i, _sentence(i), _sentence(i + 1), y),
             "sentence1\tsentence2\tlabel\tidx", lambda i, y: (_sentence(i), _sentence(i + 1), y, i)),
}


@pytest.mark.parametrize("layout", ["glue", "hf"])
@pytest.mark.parametrize("name", sorted(ALL_TASKS))
def test_every_glue_task_loads_in_both_layouts(tmp_path, name, layout):
    glue_header, glue_row, hf_header, hf_row = ALL_TASKS[name]
    spec = SPECS[name]
    header, row = (glue_header, glue_row) if layout == "glue" else (hf_header, hf_row)
    n_classes = len(spec.classes) if spec.classes else 2
    labels = [i % n_classes for i in range(12)]
    folder = tmp_path / spec.folder
    write(folder / "train.tsv", header, [row(i, y) for i, y in enumerate(labels)])
    dev_name = spec.dev_files[0] if layout == "glue" else spec.dev_files[-1]
    write(folder / dev_name, header, [row(i + 40, y) for i, y in enumerate(labels[:6])])
    for files in spec.extra_splits.values():
        write(folder / (files[0] if layout == "glue" else files[-1]), header,
              [row(i + 60, y) for i, y in enumerate(labels[:6])])
    task = get_task(f"glue:{name}", data_dir=tmp_path).prepare(tmp_path / "run")
    dev = task.dataset("dev")
    expected = [y * 2.5 for y in labels[:6]] if spec.classes is None else labels[:6]
    assert dev.labels.tolist() == pytest.approx(expected)
    assert task.num_outputs == (1 if spec.classes is None else n_classes)
    assert task.primary_metric == spec.metrics[0]
    logits = torch.randn(6, task.num_outputs)
    assert set(task.metrics(logits, dev.labels)) >= set(spec.metrics)
    assert task.loss(logits, dev.labels).ndim == 0
