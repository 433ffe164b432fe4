"""The Optuna searcher: samplers, one trial per distinct arch, constraints, multi-objective,
storages, parallel workers (processes, PostgreSQL), killed workers, and optuna-dashboard."""

import csv
import glob
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import optuna
import pytest

from nas import NasUsageError, TableEvaluator, search
from nas.searchers.optuna_search import OptunaSearch, sampler_classes

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
VALUE = {"none": 0.0, "skip_connect": 1.0, "nor_conv_1x1": 2.0, "nor_conv_3x3": 3.0, "avg_pool_3x3": 0.5}
PYTHON = sys.executable


def cell(ops):
    return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """Full synthetic NAS-Bench-201 table with params/flops columns (in millions)."""
    path = tmp_path_factory.mktemp("tables") / "nb201.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "cellstr", "acc", "params", "flops"])
        for i, ops in enumerate(itertools.product(OPS, repeat=6)):
            acc = 50 + sum(VALUE[o] * (1 + 0.1 * k) for k, o in enumerate(ops)) + (i * 7919 % 13) / 10
            params = 0.1 + 0.3 * ops.count("nor_conv_3x3") + 0.05 * ops.count("nor_conv_1x1")
            w.writerow([i, cell(ops), f"{acc:.3f}", f"{params:.4f}", f"{params * 100:.3f}"])
    return path


@pytest.fixture(scope="module")
def evaluator(table):
    return TableEvaluator("nb201", table, "acc")


def load(storage, name="nas-search"):
    return optuna.load_study(study_name=name, storage=storage)


def completed_archs(study):
    return [t.user_attrs["arch"] for t in study.get_trials(states=[optuna.trial.TrialState.COMPLETE])]


# A small space (27 archs) and a slow, logging evaluator, importable by worker processes.
SLOW = '''
import itertools, os, time
from dataclasses import dataclass
from nas import SearchSpace, Slot, TableEvaluator


@dataclass(frozen=True)
class SmallConfig:
    pass


class Small(SearchSpace):
    name = "small-test"
    presets = {"tiny": SmallConfig()}

    def _make_slots(self):
        return [Slot(s, ("p", "q", "r")) for s in "abc"]


def write_table(path):
    with open(path, "w") as f:
        f.write("arch,acc\\n")
        for i, arch in enumerate(itertools.product("pqr", repeat=3)):
            f.write(f'"{",".join(arch)}",{i + 10 * arch.count("r")}\\n')
    return path


class Slow:
    """Logs 'start'/'done' lines (pid, arch) around a sleep: shows who evaluated what, when."""

    def __init__(self, table, log, delay, announce=None, wait_for=None):
        self.inner = TableEvaluator(Small(), table, "acc")
        self.space, self.primary_metric, self.greater_is_better = self.inner.space, "acc", True
        self.log, self.delay, self.wait_for = log, delay, wait_for
        if announce:  # tell the test (or another worker) that this process is ready
            open(announce, "w").close()

    def _write(self, what, arch):
        with open(self.log, "a") as f:
            f.write(f"{what} {os.getpid()} {self.space.encode(arch)}\\n")

    def evaluate(self, arch):
        deadline = time.time() + 60
        while self.wait_for and not os.path.exists(self.wait_for) and time.time() < deadline:
            time.sleep(0.02)
        self._write("start", arch)
        time.sleep(self.delay)
        metrics = self.inner.evaluate(arch)
        self._write("done", arch)
        return metrics

    def evaluate_many(self, archs):
        return [self.evaluate(a) for a in archs]


def factory(table, log, delay, announce=None, wait_for=None):
    return Slow(table, log, delay, announce, wait_for)
'''

WORKER = '''
import json, os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nas
from nas_test_plugin_slow import factory

args = json.loads(sys.argv[1])
ev = factory(args["table"], args["log"], args["delay"])
if args.get("barrier"):
    open(args["ready"], "w").close()
    while not os.path.exists(args["barrier"]):
        time.sleep(0.02)
result = nas.search(ev, "optuna", args["budget"], seed=args["seed"], options=args["options"])
print(json.dumps({"evaluations": len(result.records)}))
'''


@pytest.fixture
def slow(plugin_path):
    (plugin_path / "nas_test_plugin_slow.py").write_text(SLOW)
    (plugin_path / "worker.py").write_text(WORKER)
    import nas_test_plugin_slow

    table = nas_test_plugin_slow.write_table(plugin_path / "small.csv")
    return nas_test_plugin_slow, table, plugin_path


def read_log(path):
    if not os.path.exists(path):
        return []
    return [line.split() for line in open(path).read().splitlines() if line.strip()]


def start_worker(folder, **args):
    return subprocess.Popen([PYTHON, str(folder / "worker.py"), json.dumps(args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# ---- samplers and trials ------------------------------------------------------------------------
def test_samplers_by_name(evaluator):
    assert {"tpe", "nsga2", "nsga3", "random", "gp", "cmaes", "qmc", "grid", "bruteforce"} <= set(sampler_classes())
    searcher = OptunaSearch(evaluator.space)
    assert isinstance(searcher.sampler, optuna.samplers.TPESampler) and searcher.sampler._multivariate
    assert OptunaSearch(evaluator.space, sampler="NSGA-II").sampler_name == "nsga2"
    tuned = OptunaSearch(evaluator.space, n_startup_trials=4)  # unknown keys go to the sampler
    assert tuned.sampler._n_startup_trials == 4
    with pytest.raises(NasUsageError, match="unknown Optuna sampler 'bayes'; choose from: bruteforce, cmaes, gp"):
        OptunaSearch(evaluator.space, sampler="bayes")
    with pytest.raises(NasUsageError, match="sampler 'random' has no option.* n_startup_trials; its options: seed"):
        OptunaSearch(evaluator.space, sampler="random", n_startup_trials=4)


@pytest.mark.parametrize("sampler", ["tpe", "random", "qmc"])
def test_one_completed_trial_per_distinct_arch(slow, sampler):
    module, table, folder = slow
    ev = module.factory(table, folder / f"{sampler}.log", 0.0)
    searcher = OptunaSearch(ev.space, seed=1, sampler=sampler)
    result = search(ev, searcher, budget=27)  # the whole space: repeats are inevitable
    trials = searcher.study.trials
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(result.records) == 27 and result.stopped is None
    assert len(complete) == 27 == len({t.user_attrs["arch"] for t in complete})
    others = [t for t in trials if t.state.name != "COMPLETE"]
    assert all(t.state.name == "FAIL" and t.user_attrs["status"] == "duplicate" for t in others)
    starts = [line for line in read_log(folder / f"{sampler}.log") if line[0] == "start"]
    assert len(starts) == 27  # nothing evaluated twice
    assert searcher.study.best_value == max(r["score"] for r in result.records)


def test_constraints_prune_without_evaluating(evaluator, tmp_path):
    result = search(evaluator, "optuna", 25, max_params=200_000, out=tmp_path / "o", seed=0)
    study = load(f"sqlite:///{tmp_path / 'o' / 'study.db'}")
    complete = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    pruned = study.get_trials(states=[optuna.trial.TrialState.PRUNED])
    assert len(complete) == 25 == len(result.records)
    assert all(t.user_attrs["params"] <= 200_000 and t.constraints["params"] <= 0 for t in complete)
    assert pruned, "a tight constraint makes the sampler propose infeasible archs"
    assert all(t.user_attrs["status"] == "infeasible" and t.constraints["params"] > 0 for t in pruned)
    assert {t.user_attrs["arch"] for t in pruned}.isdisjoint(r["arch"] for r in result.records)


@pytest.mark.parametrize("sampler", ["nsga2", "tpe"])
def test_multi_objective_reports_optunas_pareto_front(evaluator, tmp_path, sampler):
    result = search(evaluator, "optuna", 30, objectives="acc,params", out=tmp_path / "o",
                    options={"sampler": sampler})
    study = load(f"sqlite:///{tmp_path / 'o' / 'study.db'}")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert {r["arch"] for r in result.pareto} == {t.user_attrs["arch"] for t in study.best_trials}
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert {p["arch"] for p in summary["pareto"]} == {r["arch"] for r in result.pareto}
    values = [(r["score"], r["params"]) for r in result.records]
    for r in result.pareto:
        assert not any(a >= r["score"] and p <= r["params"] and (a, p) != (r["score"], r["params"])
                       for a, p in values)


# ---- storages -----------------------------------------------------------------------------------
def test_default_sqlite_storage_resumes_and_warm_starts(cli, table, tmp_path):
    out = tmp_path / "o"
    code, _, err = cli("search", "--table", table, "--metric", "acc", "--searcher", "random",
                       "--budget", 6, "--out", out)
    assert code == 0, err
    code, stdout, err = cli("search", "--table", table, "--metric", "acc", "--searcher", "optuna",
                            "--sampler", "tpe", "-O", "n_startup_trials=3", "--budget", 10, "--out", out, "--json")
    assert code == 0, err
    study = load(f"sqlite:///{out / 'study.db'}")
    rows = list(csv.DictReader(open(out / "evaluations.csv")))
    assert len(rows) == 10 and json.loads(stdout)["evaluations"] == 10
    # The 6 earlier evaluations were added to the new study, the 4 new ones are its own trials.
    assert sorted(completed_archs(study)) == sorted(r["arch"] for r in rows)
    code, _, err = cli("search", "--table", table, "--metric", "acc", "--searcher", "optuna",
                       "--budget", 14, "--out", out)
    assert code == 0, err
    assert len(set(completed_archs(load(f"sqlite:///{out / 'study.db'}")))) == 14
    code, _, err = cli("search", "--table", table, "--metric", "acc", "--searcher", "optuna",
                       "--objectives", "metric,params", "--budget", 15, "--out", out)
    assert code == 2 and "optimises maximize, not maximize, minimize" in err


def test_journal_storage_and_study_name(cli, table, tmp_path):
    journal = tmp_path / "journal.log"
    code, _, err = cli("search", "--table", table, "--metric", "acc", "--searcher", "optuna",
                       "--storage", journal, "--study-name", "mine", "--budget", 8, "--out", tmp_path / "o")
    assert code == 0, err
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    study = load(JournalStorage(JournalFileBackend(str(journal))), "mine")
    assert len(set(completed_archs(study))) == 8


@pytest.mark.parametrize("storage, message", [
    ("postgresql+psycopg2://postgres@127.0.0.1:1/nas", "cannot open storage 'postgresql+psycopg2://postgres@127.0.0.1:1/nas'"),
    ("nosuchdb://host/x", "cannot open storage 'nosuchdb://host/x'"),
    ("/nonexistent/dir/journal.log", "journal storage folder /nonexistent/dir does not exist"),
])
def test_bad_storage_is_one_line_exit_2(cli, table, tmp_path, storage, message):
    code, _, err = cli("search", "--table", table, "--metric", "acc", "--searcher", "optuna",
                       "--storage", storage, "--budget", 3, "--out", tmp_path / "o")
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1


def test_bad_sampler_on_the_cli(cli, table, tmp_path):
    code, _, err = cli("search", "--table", table, "--metric", "acc", "--searcher", "optuna",
                       "--sampler", "annealing", "--budget", 3, "--out", tmp_path / "o")
    assert code == 2 and "unknown Optuna sampler 'annealing'; choose from:" in err


# ---- parallel workers ---------------------------------------------------------------------------
_POP_WAITING = """
import json, sys
import optuna
from nas.searchers.optuna_search import make_storage
optuna.logging.set_verbosity(optuna.logging.ERROR)
study = optuna.load_study(study_name="s", storage=make_storage(sys.argv[1], 0))
got = []
while (trial_id := study._pop_waiting_trial_id()) is not None:
    got.append(trial_id)
print(json.dumps(got))
"""


@pytest.mark.slow
def test_two_processes_never_pop_the_same_waiting_trial(tmp_path):
    # Re-queued (killed worker) and enqueued (sampler stuck on known archs) trials are WAITING;
    # Optuna pops them with a read-check-write that SQLite only makes atomic when each transaction
    # takes the write lock up front. Without that, 2 processes popped 7 of 300 trials twice.
    from nas.searchers.optuna_search import make_storage

    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=make_storage(url, 0))
    for i in range(150):
        study.enqueue_trial({"x": i})
    procs = [subprocess.Popen([sys.executable, "-c", _POP_WAITING, url], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    popped = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert sorted(popped[0] + popped[1]) == sorted(t._trial_id for t in study.get_trials())
    assert not set(popped[0]) & set(popped[1])


@pytest.mark.slow
def test_workers_share_one_study_without_duplicates(slow, tmp_path):
    import functools

    module, table, folder = slow
    log, out, ready = tmp_path / "eval.log", tmp_path / "o", tmp_path / "child-ready"
    # The parent starts evaluating once the spawned child has built its evaluator: they overlap.
    result = search(module.factory(table, log, 0.1, wait_for=ready), "optuna", 18, out=out, workers=2,
                    evaluator_factory=functools.partial(module.factory, str(table), str(log), 0.1,
                                                        announce=str(ready)))
    study = load(f"sqlite:///{out / 'study.db'}")
    archs = completed_archs(study)
    assert len(archs) == 18 == len(set(archs)) == len(result.records)
    done = [line for line in read_log(log) if line[0] == "done"]
    assert len(done) == 18 == len({line[2] for line in done})  # each arch evaluated once
    assert len({line[1] for line in done}) == 2, "both processes evaluated archs"
    assert len(list(csv.DictReader(open(out / "evaluations.csv")))) == 18  # parent logged all


@pytest.mark.slow
def test_killed_worker_trial_is_retried_and_nothing_is_lost(slow, tmp_path):
    module, table, folder = slow
    log = tmp_path / "eval.log"
    options = {"storage": f"sqlite:///{tmp_path / 'study.db'}", "study_name": "s", "heartbeat": 1}
    worker = start_worker(folder, table=str(table), log=str(log), delay=0.6, budget=8, seed=0, options=options)
    deadline = time.time() + 60
    while len([x for x in read_log(log) if x[0] == "start"]) < 3:  # 2 finished, 1 running
        assert worker.poll() is None and time.time() < deadline, worker.communicate()
        time.sleep(0.05)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    lines = read_log(log)
    finished = [x[2] for x in lines if x[0] == "done"]
    killed_arch = [x[2] for x in lines if x[0] == "start"][-1]
    assert killed_arch not in finished
    time.sleep(3.5)  # grace period (3 x heartbeat) passes: the trial is now stale

    result = search(module.factory(table, log, 0.0), "optuna", 8, seed=1, options=options)
    study = load(options["storage"], "s")
    by_arch = {}
    for t in study.trials:
        by_arch.setdefault(t.user_attrs.get("arch"), []).append(t)
    killed = [t for t in by_arch[killed_arch] if t.state.name == "FAIL" and "status" not in t.user_attrs]
    retried = [t for t in by_arch[killed_arch] if t.state.name == "COMPLETE"]
    assert len(killed) == 1 and len(retried) == 1
    assert retried[0].system_attrs["failed_trial"] == killed[0].number  # re-queued by the callback
    archs = completed_archs(study)
    assert set(finished) <= set(archs)  # completed before the kill: kept
    assert len(archs) == 8 == len(set(archs)) == len(result.records)


# ---- PostgreSQL -----------------------------------------------------------------------------------
def _pg_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: [int(x) for x in re.findall(r"\d+", p)])
    if found:
        return os.path.dirname(found[-1])
    pg_ctl = shutil.which("pg_ctl")
    return os.path.dirname(os.path.realpath(pg_ctl)) if pg_ctl else None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """A throw-away PostgreSQL server on loopback (Debian's binaries; it refuses to run as root)."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries are not installed (Debian: apt-get install postgresql)")
    root = tempfile.mkdtemp(prefix="nas-pg-")
    data, port = os.path.join(root, "data"), _free_port()
    as_user = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    run = _runner(as_user)
    run([f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "postgres"])
    run([f"{bindir}/pg_ctl", "-D", data, "-l", os.path.join(root, "log"), "-w", "-o",
         f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"])
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        run([f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"])
        shutil.rmtree(root, ignore_errors=True)


def _runner(prefix):
    def run(cmd):
        done = subprocess.run(prefix + cmd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    return run


@pytest.mark.slow
@pytest.mark.postgres
def test_two_processes_share_one_postgres_study(slow, postgres_url, tmp_path):
    module, table, folder = slow
    log = tmp_path / "eval.log"
    options = {"storage": postgres_url, "study_name": f"pg-{os.getpid()}-{time.time_ns()}"}
    barrier = tmp_path / "go"
    workers = [start_worker(folder, table=str(table), log=str(log), delay=0.1, budget=20, seed=seed,
                            options=options, barrier=str(barrier), ready=str(tmp_path / f"ready{seed}"))
               for seed in (1, 2)]
    deadline = time.time() + 60
    while not all((tmp_path / f"ready{s}").exists() for s in (1, 2)):
        assert all(w.poll() is None for w in workers) and time.time() < deadline
        time.sleep(0.05)
    barrier.touch()  # both start searching at once
    outputs = [w.communicate(timeout=120) for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    assert [json.loads(o[0])["evaluations"] for o in outputs] == [20, 20]
    study = load(postgres_url, options["study_name"])
    archs = completed_archs(study)
    assert len(archs) == 20 == len(set(archs))  # the budget is global and nothing is repeated
    starts = [x for x in read_log(log) if x[0] == "start"]
    assert len(starts) == 20 == len({x[2] for x in starts})  # no arch evaluated twice
    assert len({x[1] for x in starts}) == 2, "both workers evaluated archs"


# ---- dashboard ----------------------------------------------------------------------------------
def test_dashboard_serves_the_study(evaluator, tmp_path):
    dashboard = shutil.which("optuna-dashboard") or os.path.join(os.path.dirname(PYTHON), "optuna-dashboard")
    if not os.path.exists(dashboard):
        pytest.skip("optuna-dashboard is not installed (pip install magic-nas[dashboard])")
    search(evaluator, "optuna", 5, out=tmp_path / "o", options={"study_name": "dash-study"})
    port = _free_port()
    proc = subprocess.Popen([dashboard, f"sqlite:///{tmp_path / 'o' / 'study.db'}", "--host", "127.0.0.1",
                             "--port", str(port), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline, body = time.time() + 60, None
        while body is None:
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "dashboard did not answer"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as resp:
                    body = json.loads(resp.read())
            except OSError:
                time.sleep(0.2)
        studies = {s["study_name"]: s for s in body.get("study_summaries", body.get("studies", []))}
        assert "dash-study" in studies and studies["dash-study"]["directions"] == ["maximize"]
        url = f"http://127.0.0.1:{port}/api/studies/{studies['dash-study']['study_id']}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            detail = json.loads(resp.read())
        complete = [t for t in detail["trials"] if t["state"] == "Complete"]
        assert len(complete) == 5
        assert all(any(a["key"] == "arch" for a in t["user_attrs"]) for t in complete)
    finally:
        proc.kill()
        proc.wait(timeout=10)
