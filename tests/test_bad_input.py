"""Bad input, table-driven: each row is a `nas` command line that must fail with exit code 2 and
one line naming the problem, no traceback, and leave every existing file as it was (the folders it
touches are snapshotted before and after, links included).

To check a new command or option, add a row to CASES: (id, argv, setup, expected fragment[, text
that must not appear]). In argv, {table} is a tiny NAS-Bench-201-style CSV, {run} a tiny trained
`bert` super-net, {pipe} a `nas run` folder, {out} an output folder prepared by `setup` (a function
of SETUPS, or None: absent) and {tmp} the test's own folder. Training-side inputs have their own
table in tests/test_bad_input_train.py.
"""

import csv
import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def _cell(ops):
    return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    """Shared inputs: a table, a tiny trained run, a `nas run` folder (built here, never shared/)."""
    from nas.cli import main

    root = tmp_path_factory.mktemp("bad-input")
    table = root / "nb201.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "acc", "err", "params", "flops"])
        for i, ops in enumerate(itertools.product(OPS, repeat=6)):
            acc = 50 + sum(k * (o == "nor_conv_3x3") for k, o in enumerate(ops)) + i % 7 / 10
            params = 0.1 + 0.3 * ops.count("nor_conv_3x3")
            w.writerow([_cell(ops), f"{acc:.2f}", f"{100 - acc:.2f}", f"{params:.3f}", f"{params * 50:.3f}"])
    run = root / "run"
    try:
        main(["train", "bert", "--steps", "2", "--batch-size", "8", "--out", str(run)])
    except SystemExit as exc:
        assert exc.code in (0, None), f"tiny training failed ({exc.code})"
    pipe = root / "pipe"  # what `nas run` leaves: config.json with a "pipeline" section
    (pipe / "supernet").mkdir(parents=True)
    (pipe / "config.json").write_text(json.dumps({"pipeline": {"space": "bert"}, "versions": {}}))
    return {"table": table, "run": run, "pipe": pipe, "root": root}


# ---- setups: prepare {out} (the folder a command must not change) ------------------------------
def _victim(tmp):
    victim = tmp / "victim.txt"
    victim.write_text("precious\n")
    return victim


def foreign_csv(out, tmp, fx):
    out.mkdir()
    (out / "evaluations.csv").write_bytes(b"a,b\n1,2")  # an unfinished last line, not a search log


def one_line_file(out, tmp, fx):
    out.mkdir()
    (out / "evaluations.csv").write_bytes(b"hello")


def link(name):
    def setup(out, tmp, fx):
        out.mkdir()
        os.symlink(_victim(tmp), out / name)
    setup.__name__ = f"link_{name}"
    return setup


def corrupt_settings(out, tmp, fx):
    out.mkdir()
    (out / "search.json").write_text("{not json")


def acc_search(out, tmp, fx):
    from nas import TableEvaluator, search

    search(TableEvaluator("nb201", fx["table"], "acc"), "random", 3, out=out)
    with open(out / "evaluations.csv", "ab") as f:
        f.write(b"4,|none~0|+|no")  # a torn line: dropped only when resuming this very search


def a_file(out, tmp, fx):
    out.write_text("not a folder\n")


def pipeline_run(out, tmp, fx):
    """A `nas run` folder whose super-net and search stages have started, with the defaults."""
    from nas.report import PipelineConfig

    cfg = dataclasses.asdict(PipelineConfig(out=str(out)))
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"pipeline": cfg, "versions": {}}))
    (out / "supernet").mkdir()
    (out / "search").mkdir()


T = ["--table", "{table}", "--metric", "acc"]
OUT = ["--out", "{out}"]
CASES = [
    # zero-cost estimators: nas rank / nas search --estimator
    ("rank-unknown-estimator", ["rank", "--estimator", "nope", "--space", "nb201", *OUT], None,
     "unknown estimator 'nope'; choose from: supernet, jacov"),
    ("rank-ensemble-twice", ["rank", "--estimator", "params+params", "--space", "nb201", *OUT], None,
     "names params twice"),
    ("rank-ensemble-empty", ["rank", "--estimator", "params+", "--space", "nb201", *OUT], None,
     "names an empty estimator"),
    ("rank-supernet-without-run", ["rank", "--estimator", "supernet+params", "--space", "nb201", *OUT], None,
     "uses the super-net's estimates: give a RUN"),
    ("rank-estimator-without-space", ["rank", "--estimator", "params", *OUT], None, "needs --space"),
    ("rank-nothing", ["rank", *OUT], None, "nothing to rank with"),
    ("rank-run-other-space", ["rank", "{run}", "--estimator", "params", "--space", "nb201", *OUT], None,
     "--space nb201 differs from the run's space 'bert'"),
    ("rank-run-data-dir", ["rank", "{run}", "--estimator", "params", "--data-dir", "{tmp}", *OUT], None,
     "--data-dir goes with --space"),
    ("rank-estimator-bn-recal", ["rank", "--estimator", "params", "--space", "nb201", "--bn-recal-batches",
                                 "4", *OUT], None, "--bn-recal-batches goes with a RUN"),
    ("rank-estimator-batch", ["rank", "--estimator", "naswot", "--space", "bert", "--estimator-batch-size",
                              "1", *OUT], None, "batch size must be an integer >= 2"),
    ("rank-estimator-unknown-space", ["rank", "--estimator", "params", "--space", "nope", *OUT], None,
     "unknown space 'nope'"),
    ("rank-estimator-out-file", ["rank", "--estimator", "params", "--space", "nb201", "--ground-truth",
                                 "{table}", "--arch-column", "arch", "--metric", "acc", *OUT], a_file,
     "is a file; give a folder"),
    ("search-estimator-ensemble", ["search", "--estimator", "params+synflow", "--space", "nb201", *OUT], None,
     "an ensemble ranks a fixed set of children"),
    ("search-estimator-with-run", ["search", "--estimator", "params", "--run", "{run}", *OUT], None,
     "drop --run"),
    ("search-estimator-no-space", ["search", "--estimator", "params", *OUT], None, "needs --space"),
    ("search-estimator-metric", ["search", "--estimator", "params", "--space", "nb201", "--metric", "acc",
                                 *OUT], None, "--metric and --arch-column go with --table"),
    ("search-estimator-unknown", ["search", "--estimator", "nope", "--space", "nb201", *OUT], None,
     "unknown estimator 'nope'"),
    ("search-supernet-no-run", ["search", "--estimator", "supernet", "--space", "nb201", *OUT], None,
     "give --run RUN_DIR"),
    ("search-task-without-estimator", ["search", *T, "--task", "cifar10", *OUT], None,
     "--task goes with --estimator"),
    # nas search: the --out folder is validated before anything in it is changed
    ("search-foreign-log", ["search", "--space", "nb201", *T, "--budget", "5", *OUT], foreign_csv,
     "evaluations.csv is not a nas search log (columns a, b)"),
    ("search-foreign-line", ["search", *T, "--budget", "5", *OUT], one_line_file, "is not a nas search log"),
    ("search-lock-link", ["search", *T, "--budget", "5", *OUT], link(".lock"), ".lock is a symbolic link"),
    ("search-csv-link", ["search", *T, "--budget", "5", *OUT], link("evaluations.csv"),
     "evaluations.csv is a symbolic link"),
    ("search-json-link", ["search", *T, "--budget", "5", *OUT], link("summary.json"),
     "summary.json is a symbolic link"),
    ("search-study-link", ["search", *T, "--searcher", "optuna", "--budget", "5", *OUT], link("study.db"),
     "study.db is a symbolic link"),
    ("search-corrupt-settings", ["search", *T, "--budget", "5", *OUT], corrupt_settings,
     "search.json is not a readable search record"),
    ("search-other-metric", ["search", "--table", "{table}", "--metric", "err", "--budget", "5", *OUT],
     acc_search, "holds a search with metric 'acc', not 'err'"),
    ("search-out-is-file", ["search", *T, "--budget", "5", *OUT], a_file, "is a file, not a folder"),
    # impossible constraints: one line at once, not a scan of every child
    ("search-impossible-table", ["search", *T, "--max-params", "10", *OUT], None,
     "no child of space 'nb201' meets --max-params 10"),
    ("search-impossible-run", ["search", "--run", "{run}", "--max-params", "10", *OUT], None,
     "no child of space 'bert' meets --max-params 10"),
    ("search-impossible-macs", ["search", "--run", "{run}", "--max-macs", "1k", *OUT], None,
     "no child of space 'bert' meets --max-macs 1,000"),
    # error text is printed literally, never read as rich markup
    ("markup-arch", ["space", "show", "bert", "--arch", "[/red]"], None, "arch '[/red]' has 1 token(s)"),
    ("markup-path", ["search", "--run", "{tmp}/x[/bold]", *OUT], None, "x[/bold] is not a folder"),
    ("markup-table", ["search", "--table", "{tmp}/[bold]t[/bold].csv", "--metric", "acc", *OUT], None,
     "[bold]t[/bold].csv"),
    # a `nas run` folder where a `nas train` run is expected
    ("evaluate-pipeline", ["evaluate", "{pipe}", "--arch", "bert-base"], None,
     "is a `nas run` pipeline folder, not a training run; its super-net run is"),
    ("export-pipeline", ["export", "{pipe}", "--arch", "bert-base", "--out", "{tmp}/exported"], None,
     "is a `nas run` pipeline folder"),
    ("search-run-pipeline", ["search", "--run", "{pipe}", *OUT], None, "is a `nas run` pipeline folder"),
    # searcher and evaluation options
    ("optuna-option-type", ["search", *T, "--searcher", "optuna", "-O", "n_startup_trials=abc", *OUT], None,
     "sampler 'tpe' option n_startup_trials must be an integer, got 'abc'"),
    ("optuna-option-object", ["search", *T, "--searcher", "optuna", "-O", "gamma=3", *OUT], None,
     "option gamma takes a Python object"),
    ("evaluate-bn-recal", ["evaluate", "{run}", "--arch", "bert-base", "--bn-recal-batches", "-5"], None,
     "--bn-recal-batches must be an integer >= 0"),
    ("export-bn-recal", ["export", "{run}", "--arch", "bert-base", "--bn-recal-batches", "-5",
                         "--out", "{tmp}/exported"], None, "--bn-recal-batches must be an integer >= 0"),
    ("storage-password", ["search", *T, "--searcher", "optuna", "--storage",
                          "postgresql+psycopg2://bob:hunter2@127.0.0.1:1/nas", "--budget", "3", *OUT], None,
     "cannot open storage 'postgresql+psycopg2://bob:***@127.0.0.1:1/nas'", "hunter2"),
    # nas run: every option before any stage; a started stage keeps its settings
    ("run-budget-0", ["run", "--budget", "0", *OUT], None, "--budget must be >= 1 (got 0)"),
    ("run-retrain-steps", ["run", "--retrain-steps", "-1", *OUT], None, "--retrain-steps must be >= 1"),
    ("run-searcher-option", ["run", "--searcher-opt", "colour=red", *OUT], None,
     "searcher 'evolutionary' has no option(s) colour"),
    ("run-optuna-option", ["run", "--searcher", "optuna", "--searcher-opt", "n_startup_trials=abc", *OUT], None,
     "option n_startup_trials must be an integer"),
    ("run-other-searcher", ["run", "--searcher", "random", *OUT], pipeline_run,
     "holds a pipeline run with other searcher: searcher 'evolutionary' (given 'random')"),
    ("run-other-budget", ["run", "--budget", "7", *OUT], pipeline_run,
     "holds a pipeline run with other budget: budget 60 (given 7)"),
]


def snapshot(*roots):
    """Every path under ``roots``: kind, bytes or link target, mode and mtime."""
    state = {}
    for root in roots:
        root = Path(root)
        if not os.path.lexists(root):
            continue
        paths = [root] + (sorted(root.rglob("*")) if root.is_dir() and not root.is_symlink() else [])
        for p in paths:
            st = os.lstat(p)
            if p.is_symlink():
                state[str(p)] = ("link", os.readlink(p))
            elif p.is_dir():
                state[str(p)] = ("dir", st.st_mode)
            else:
                state[str(p)] = ("file", p.read_bytes(), st.st_mode, st.st_mtime_ns)
    return state


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(cli, fixtures, tmp_path, case):
    name, argv, setup, expected, *absent = case
    out = tmp_path / "out"
    if setup is not None:
        setup(out, tmp_path, fixtures)
    values = {k: str(fixtures[k]) for k in ("table", "run", "pipe")}
    values.update(out=str(out), tmp=str(tmp_path))
    args = [a.format(**values) for a in argv]
    before = snapshot(tmp_path, fixtures["root"])
    code, stdout, stderr = cli(*args)
    text = stdout + stderr
    assert code == 2, f"{name}: exit {code}\n{text}"
    assert "Traceback" not in text, text
    assert stdout.strip() == "", f"{name}: printed on stdout: {stdout}"
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"{name}: expected one line, got:\n{stderr}"
    assert expected in lines[0], f"{name}: {lines[0]!r} lacks {expected!r}"
    for word in absent:
        assert word not in text, f"{name}: {word!r} printed"
    assert snapshot(tmp_path, fixtures["root"]) == before, f"{name}: changed existing files"


# ---- the same guarantees, checked beyond one command line --------------------------------------
def test_torn_line_of_this_search_is_still_dropped_on_resume(fixtures, tmp_path):
    """The folder checks keep resume working: a torn last line of this search's log is dropped
    (atomically, after the checks), and the search continues."""
    from nas import TableEvaluator, search

    out = tmp_path / "o"
    acc_search(out, tmp_path, fixtures)
    result = search(TableEvaluator("nb201", fixtures["table"], "acc"), "random", 5, out=out)
    rows = list(csv.DictReader(open(out / "evaluations.csv")))
    assert len(rows) == 5 == len(result.records)
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())


def test_refused_new_out_folder_is_not_left_behind(cli, fixtures, tmp_path):
    code, _, err = cli("search", *[a.format(table=fixtures["table"]) for a in T], "--searcher", "optuna",
                       "-O", "n_startup_trials=abc", "--out", tmp_path / "new")
    assert code == 2 and not (tmp_path / "new").exists(), err


def test_nas_run_summary_table_is_readable_in_80_columns():
    from rich.console import Console

    from nas.cli._run import summary_table

    arch = "mha4,ffn256,conv3,ffn128,mha2,ffn512,id,ffn256"
    rows = [{"label": label, "arch": arch, "supernet_estimate": 0.5123, "retrained_dev": 0.6101,
             "retrained_test": 0.6002, "params": 1_234_567, "macs": 123_456_789}
            for label in ("best", "random", "reference (bert-base)")]
    report = {"space": "bert", "task": "synthetic-text", "mode": "magic-at", "searcher": "evolutionary",
              "comparison": rows}
    console = Console(width=80, record=True, markup=False)
    console.print(summary_table(report))
    text = console.export_text()
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "…" not in text
    for value in ("0.5123", "0.6101", "0.6002", "1.23M", "123M"):
        assert value in text
    # The folded arch column still holds every arch whole.
    cells = "".join(line.split("│")[2].strip() for line in text.splitlines() if line.startswith("│"))
    assert cells == arch * 3


def test_optuna_rerun_after_a_kill_does_not_wait_for_the_heartbeat(fixtures, tmp_path):
    """A trial left running by a killed process of this host is failed and retried at once, not
    after the heartbeat grace period (here 3 x 60 s)."""
    import socket

    import optuna

    from nas import TableEvaluator, search

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    ev = TableEvaluator("nb201", fixtures["table"], "acc")
    search(ev, "optuna", 3, options={"storage": storage, "study_name": "s", "heartbeat": 60})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is gone: the worker that "was killed"
    study = optuna.load_study(study_name="s", storage=storage)
    trial = study.ask()
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    trial.set_user_attr("arch", arch)
    trial.set_user_attr("worker", f"{socket.gethostname()}:{dead.pid}")
    study._storage.record_heartbeat(trial._trial_id)
    start = time.monotonic()
    result = search(ev, "optuna", 4, seed=1, options={"storage": storage, "study_name": "s", "heartbeat": 60})
    assert time.monotonic() - start < 30  # no wait for the 180 s grace period
    assert len(result.records) == 4
    states = {t.number: t.state.name for t in optuna.load_study(study_name="s", storage=storage).trials}
    assert states[trial.number] == "FAIL"


_CHILD = """
import signal, time

def main():
    from nas.searching._workers import _exit_with_parent

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    _exit_with_parent(poll=0.1)
    open(__file__ + ".ready", "w").close()
    try:
        time.sleep(120)
    except KeyboardInterrupt:
        raise SystemExit(130)
"""

_PARENT = """
import multiprocessing, time
import nas_test_childmod

if __name__ == "__main__":
    proc = multiprocessing.get_context("spawn").Process(target=nas_test_childmod.main, daemon=True)
    proc.start()
    print(proc.pid, flush=True)
    time.sleep(120)
"""


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by init) counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def test_search_workers_exit_when_their_parent_is_killed(tmp_path):
    (tmp_path / "nas_test_childmod.py").write_text(_CHILD)
    (tmp_path / "parent.py").write_text(_PARENT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]))
    parent = subprocess.Popen([sys.executable, str(tmp_path / "parent.py")], stdout=subprocess.PIPE,
                              env=env, text=True)
    child = int(parent.stdout.readline())
    ready = tmp_path / "nas_test_childmod.py.ready"
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 60
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(child):
        os.kill(child, signal.SIGKILL)
        pytest.fail("the worker outlived its killed parent")
