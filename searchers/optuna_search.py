"""Optuna as a searcher: any Optuna sampler, multi-objective, and studies shared by many workers.

Each slot is a categorical parameter; one **completed** trial is one distinct evaluated arch (its
canonical string is the trial's user attribute ``arch``). A proposal that is not evaluated still
finishes its trial, so it never counts: a repeat of an evaluated arch -> FAIL with ``status=
duplicate`` (samplers ignore failed trials; the original trial holds the value), an infeasible arch
-> PRUNED with ``status=infeasible`` and its constraint violations (``trial.set_constraint``), so
constraint-aware samplers (TPE, NSGA-II, GP) learn to avoid the region without an evaluation.

Sharing one study between processes or machines (``--workers``, or several ``nas search`` with one
``--storage``/``--study-name``) uses a claim protocol on the storage, which has no compare-and-set:
a worker first writes ``arch`` on its running trial, then reads the study; it evaluates only if no
other trial has that arch (completed -> reuse its result; waiting/running -> yield with
``status=conflict``) and completed + claimed trials stay within the budget (else ``status=budget``).
Write-then-read makes a double evaluation impossible: of two workers claiming one arch, the one
reading second sees the other's claim. In a near tie both may yield; the arch is simply proposed
again later. Each storage operation commits on its own (RDB) or appends to one log (journal), which
is what the argument needs.

A killed worker's trial is found by Optuna's heartbeat (RDB storages: ``RDBStorage(
heartbeat_interval, grace_period)``), failed, and re-queued by ``RetryHeartbeatStaleTrialCallback``
as a WAITING trial carrying the same ``arch``; ``study.ask`` hands it to the next free worker.
On every storage, a running trial claimed by a process of this host whose pid is gone (a killed
``nas search`` or worker: the ``worker`` attribute is ``host:pid``) is failed and re-queued the same
way at once, so a rerun after a kill does not sit out the heartbeat grace period; journal files
have no heartbeat, so this is their only way. (This trusts host names to be unique among the
machines sharing a study.)
"""

from __future__ import annotations

import inspect
import os
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from nas import Arch, NasUsageError, Searcher, register_searcher
from nas.searching import OWN, Claim, redact_url

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
_ALIASES = {"nsgaii": "nsga2", "nsgaiii": "nsga3", "multivariatetpe": "tpe"}
_SKIP = ("BaseSampler", "BaseGASampler", "PartialFixedSampler")


def sampler_classes() -> dict[str, type]:
    """Optuna's samplers by short name: tpe, nsga2, nsga3, random, gp, cmaes, qmc, grid, ..."""
    import optuna.samplers as samplers

    found = {}
    for attr in samplers.__all__:
        cls = getattr(samplers, attr)
        if isinstance(cls, type) and issubclass(cls, samplers.BaseSampler) and attr not in _SKIP:
            key = attr.removesuffix("Sampler").lower()
            found[_ALIASES.get(key, key)] = cls
    return dict(sorted(found.items()))


def _sampler_key(name: str) -> str:
    key = name.lower().replace("-", "").replace("_", "").removesuffix("sampler")
    return _ALIASES.get(key, key)


def make_sampler(name: str, params: dict[str, tuple[str, ...]], seed: int, shared: bool,
                 options: dict[str, Any], constraints_func: Any = None):
    """An Optuna sampler by name; ``options`` go to its constructor (checked against it)."""
    import optuna

    classes = sampler_classes()
    key = _sampler_key(name)
    if key not in classes:
        raise NasUsageError(f"unknown Optuna sampler '{name}'; choose from: {', '.join(classes)}")
    cls = classes[key]
    accepted = inspect.signature(cls.__init__).parameters
    bad = sorted(set(options) - set(accepted))
    if bad:
        valid = [p for p in accepted if p not in ("self", "args", "kwargs")]
        raise NasUsageError(
            f"sampler '{key}' has no option(s) {', '.join(bad)}; its options: {', '.join(valid)}"
        )
    options = {k: _check_sampler_option(key, k, v, accepted[k]) for k, v in options.items()}
    kwargs: dict[str, Any] = {}
    if "seed" in accepted:
        kwargs["seed"] = seed
    if key == "tpe":
        kwargs["multivariate"] = True  # models the slots jointly: they interact
        if shared:
            kwargs["constant_liar"] = True  # running trials steer other workers elsewhere
    if key == "grid":
        kwargs["search_space"] = {k: list(v) for k, v in params.items()}
    if constraints_func is not None and "constraints_func" in accepted:
        kwargs["constraints_func"] = constraints_func  # Optuna < 5 (no Trial.set_constraint)
    kwargs.update(options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise NasUsageError(f"cannot build sampler '{key}': {exc}") from None


_SIMPLE = {"int": int, "float": float, "bool": bool, "str": str}


def _check_sampler_option(sampler: str, name: str, value: Any, param: inspect.Parameter) -> Any:
    """A ``--searcher-opt`` value checked against the sampler constructor's annotation (else its
    default's type): a wrong type is one clear line here, not a TypeError in the middle of a search."""
    annotation = param.annotation
    if annotation is inspect.Parameter.empty:
        kinds = [type(param.default).__name__] if param.default not in (None, inspect.Parameter.empty) else []
    else:
        text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
        kinds = [part.strip() for part in str(text).split("|")]
    if not kinds:
        return value
    if value is None:
        if "None" in kinds:
            return value
    elif isinstance(value, bool):
        if "bool" in kinds:
            return value
    elif isinstance(value, int) and ("int" in kinds or "float" in kinds):
        return value if "int" in kinds else float(value)
    elif isinstance(value, float) and "float" in kinds:
        return value
    elif isinstance(value, str) and "str" in kinds:
        return value
    wanted = [k for k in kinds if k in _SIMPLE or k == "None"]
    if len(wanted) < len(kinds) and (not wanted or wanted == ["None"]):
        raise NasUsageError(
            f"sampler '{sampler}' option {name} takes a Python object ({' | '.join(kinds)}), which "
            "--searcher-opt cannot give; drop it"
        )
    names = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "text", "None": "none"}
    raise NasUsageError(
        f"sampler '{sampler}' option {name} must be {' or '.join(names[k] for k in wanted)}, got '{value}'"
    )


def make_storage(spec: str | None, heartbeat: int):
    """None (in memory), an SQLAlchemy URL (RDB with heartbeat) or a journal file path."""
    import optuna

    if spec is None:
        return None
    if "://" not in spec:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(spec)
        if not path.parent.exists():
            raise NasUsageError(
                f"journal storage folder {path.parent} does not exist; create it or give another path"
            )
        try:
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise NasUsageError(f"cannot open journal storage {path}: {exc}") from None
    kwargs: dict[str, Any] = {}
    if heartbeat > 0:
        kwargs.update(heartbeat_interval=heartbeat, grace_period=3 * heartbeat)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):
                kwargs["heartbeat_stale_trial_callback"] = _retry_callback()
            else:  # Optuna < 4.9
                kwargs["failed_trial_callback"] = _retry_callback()
    if spec.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}  # several local processes
    last: Exception | None = None
    for attempt in range(3):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(spec, **kwargs)
            if spec.startswith("sqlite"):
                _configure_sqlite(storage.engine)
            return storage
        except Exception as exc:  # noqa: BLE001 - any failure to open is the user's URL/server
            last = exc
            # Two workers creating the tables at once may collide; anything else is final.
            if type(exc).__name__ not in ("IntegrityError", "ProgrammingError"):
                break
            time.sleep(0.5 * (attempt + 1))
    reason = str(last).strip().splitlines()[0] if str(last).strip() else type(last).__name__
    raise NasUsageError(
        f"cannot open storage '{redact_url(spec)}': {redact_url(reason, spec)}; check the URL (e.g. sqlite:///study.db, "
        "postgresql+psycopg2://user@host:5432/db) and that the server is reachable"
    ) from None


def _configure_sqlite(engine: Any) -> None:
    """SQLite in WAL mode without fsync per commit, and every transaction begun IMMEDIATE.

    WAL + synchronous=NORMAL: a trial makes ~25 small commits, which cost ~7 ms each otherwise;
    WAL also lets the dashboard read while a worker writes. A crashed process loses nothing (only
    a power cut can drop the last commits).

    BEGIN IMMEDIATE: Python's sqlite3 starts a transaction only at the first write, so Optuna's
    read-check-write steps (``SELECT ... FOR UPDATE`` is a no-op on SQLite) are not atomic: two
    workers could both pop the same WAITING trial and evaluate one arch twice (measured: 7 of 300
    queued trials popped twice by 2 processes). Taking the write lock when a transaction begins
    serialises them; the 60 s busy timeout makes the others wait instead of failing.
    (SQLAlchemy's documented pysqlite recipe: isolation_level None + an explicit BEGIN.)
    """
    from sqlalchemy import event

    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # no implicit BEGIN: SQLAlchemy's "begin" emits it
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    def begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", pragmas)
    event.listen(engine, "begin", begin)
    engine.dispose()  # reconnect through the listener


def _retry_callback():
    """Re-queue a dead worker's trial (same params and ``arch``) at most 3 times."""
    import optuna

    cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return cls(max_retry=3)


class _Heartbeat:
    """Records a trial's heartbeat every ``interval`` seconds in a thread (ask/tell has none)."""

    def __init__(self, storage: Any, trial_id: int, interval: int):
        self._stop = threading.Event()
        self._storage, self._trial_id, self._interval = storage, trial_id, interval
        storage.record_heartbeat(trial_id)
        self._thread = threading.Thread(target=self._run, daemon=True, name="nas-heartbeat")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._storage.record_heartbeat(self._trial_id)
            except Exception:  # noqa: BLE001 - a missed beat is retried next interval
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class _UserAttrConstraints:
    """``constraints_func`` for Optuna < 5: violations stored in the user attribute."""

    def __call__(self, trial: Any) -> list[float]:
        return list(trial.user_attrs.get("constraints", [0.0]))


@register_searcher("optuna")
class OptunaSearch(Searcher):
    """An Optuna study (multivariate TPE by default; any sampler), shareable across workers.

    Options: ``sampler`` (a name of :func:`sampler_classes`), ``storage`` (None: in memory; an
    SQLAlchemy URL; or a journal file path), ``study_name`` (created, resumed or joined),
    ``heartbeat`` (seconds between a running trial's heartbeats on RDB storages; a trial silent for
    3 heartbeats is failed and retried; 0 disables), ``max_duplicates`` (repeated proposals in a
    row before a random new arch is queued); any other option goes to the sampler's constructor
    (e.g. ``n_startup_trials=20``).
    """

    def __init__(self, space, seed=0, feasible=None, maximize=True, directions=None, *,
                 sampler: str = "tpe", storage: str | None = None, study_name: str | None = None,
                 heartbeat: int = 30, max_duplicates: int = 3, **sampler_options: Any):
        super().__init__(space, seed, feasible, maximize, directions)
        import optuna

        if optuna.logging.get_verbosity() <= optuna.logging.INFO:
            optuna.logging.set_verbosity(optuna.logging.WARNING)  # no log line per trial: we show progress
        self._optuna = optuna
        self.shared = storage is not None
        self.heartbeat = int(heartbeat) if self.shared and "://" in (storage or "") else 0
        self.max_duplicates = max_duplicates
        names = [s.name for s in space.slots]
        if len(set(names)) != len(names):
            names = [f"{i}:{n}" for i, n in enumerate(names)]
        self._params = {n: tuple(s.options) for n, s in zip(names, space.slots)}
        self._violations = getattr(self.feasible, "violations", None)
        self._has_set_constraint = hasattr(optuna.trial.Trial, "set_constraint")
        legacy = None if self._has_set_constraint or self._violations is None else _UserAttrConstraints()
        self.sampler_name = _sampler_key(sampler)
        self.sampler = make_sampler(sampler, self._params, seed, self.shared, sampler_options, legacy)
        self._storage = make_storage(storage, self.heartbeat)
        self.study_name = study_name or ("nas-search" if self.shared else None)
        try:
            self.study = optuna.create_study(
                storage=self._storage, sampler=self.sampler, study_name=self.study_name,
                directions=list(self.directions), load_if_exists=True,
            )
        except ValueError as exc:
            raise NasUsageError(
                f"cannot use study '{self.study_name}': {exc}; choose another --study-name"
            ) from None
        stored = [d.name.lower() for d in self.study.directions]
        if stored != list(self.directions):
            raise NasUsageError(
                f"study '{self.study_name}' optimises {', '.join(stored)}, not "
                f"{', '.join(self.directions)}; use the same --objectives or another --study-name"
            )
        self._pending: dict[Arch, tuple[Any, _Heartbeat | None]] = {}
        self._known: set[int] = set()  # numbers of completed trials this worker has reported
        self._complete_archs = {t.user_attrs.get("arch") for t in self._trials(("COMPLETE",))}
        self._streak = 0
        self._last_reap = 0.0

    @classmethod
    def shares_work(cls, options: dict[str, Any]) -> bool:
        """Workers share the study through its storage; an in-memory study cannot be shared."""
        return options.get("storage") is not None

    @classmethod
    def defaults_for_out(cls, out: Path) -> dict[str, Any]:
        """With an output folder, the study lives in it (``optuna-dashboard sqlite:///...``)."""
        return {"storage": f"sqlite:///{Path(out).resolve() / 'study.db'}"}

    # ---- helpers ------------------------------------------------------------------------------
    def _trials(self, states: tuple[str, ...]) -> list[Any]:
        TrialState = self._optuna.trial.TrialState
        return self.study.get_trials(deepcopy=False, states=tuple(TrialState[s] for s in states))

    def _record(self, trial: Any) -> dict[str, Any]:
        a = trial.user_attrs
        return {"arch": a["arch"], "metrics": a.get("metrics", {}), "params": a.get("params"),
                "macs": a.get("macs"), "time": a.get("seconds")}

    def _finish(self, arch: Arch, state: str, status: str | None = None) -> None:
        trial, beat = self._pending.pop(arch, (None, None))
        if trial is None:
            return
        if beat is not None:
            beat.stop()
        if status:
            trial.set_user_attr("status", status)
        self.study.tell(trial, state=self._optuna.trial.TrialState[state], skip_if_finished=True)

    def _reap(self) -> None:
        """Fail and re-queue trials of dead workers.

        A trial claimed by a process of this host whose pid is gone (a killed ``nas search`` or
        worker) is failed and re-queued at once, on every storage: a rerun after a kill does not
        wait out the heartbeat grace period. Trials of other hosts are failed by Optuna's heartbeat
        (RDB storages) once silent for 3 heartbeats; journal files have no heartbeat.
        """
        if not self.shared or time.monotonic() - self._last_reap < 1.0:
            return
        self._last_reap = time.monotonic()
        optuna = self._optuna
        if self.heartbeat:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)
        host = socket.gethostname()
        for t in self._trials(("RUNNING",)):
            worker = str(t.user_attrs.get("worker", ""))
            name, _, pid = worker.rpartition(":")
            if name != host or not pid.isdigit() or _alive(int(pid)):
                continue
            try:
                if not self.study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL):
                    continue
            except Exception:  # noqa: BLE001 - another worker failed it first
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                _retry_callback()(self.study, self.study._storage.get_trial(t._trial_id))

    # ---- strategy -----------------------------------------------------------------------------
    def ask(self) -> Arch | None:
        self._reap()
        if self._streak >= self.max_duplicates:
            # The sampler keeps proposing known archs (converged, or the space is nearly used up):
            # queue a random new one so the search moves on.
            self._streak = 0
            arch = self.sample_unseen()
            if arch is None:
                return None
            self.study.enqueue_trial(dict(zip(self._params, arch)))
        with warnings.catch_warnings():  # we beat ourselves (see _Heartbeat): ask/tell is fine
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
            trial = self.study.ask()
        beat = _Heartbeat(self._storage, trial._trial_id, self.heartbeat) if self.heartbeat else None
        try:
            arch = tuple(trial.suggest_categorical(n, list(o)) for n, o in self._params.items())
        except BaseException:
            if beat is not None:
                beat.stop()
            self.study.tell(trial, state=self._optuna.trial.TrialState.FAIL, skip_if_finished=True)
            raise
        self._pending[arch] = (trial, beat)
        return arch

    def claim(self, arch: Arch, budget: int) -> Claim:
        trial, _ = self._pending[arch]
        key = self.space.encode(arch)
        trial.set_user_attr("arch", key)
        trial.set_user_attr("worker", WORKER_ID)
        if not self.shared:
            return OWN
        used, done, busy = 1, None, False  # 1: this claim
        for t in self._trials(("WAITING", "RUNNING", "COMPLETE")):
            if t.number == trial.number:
                continue
            same = t.user_attrs.get("arch") == key
            if t.state.name == "COMPLETE":
                used += 1
                done = t if same and done is None else done
            elif same:
                busy = True
            elif t.state.name == "RUNNING" and "arch" in t.user_attrs:
                used += 1
        if done is not None:
            self._finish(arch, "FAIL", "duplicate")
            self._known.add(done.number)
            return Claim("done", self._record(done))
        if busy:
            self._streak += 1
            self._finish(arch, "FAIL", "conflict")
            return Claim("busy")
        if used > budget:
            self._finish(arch, "FAIL", "budget")
            return Claim("full")
        return OWN

    def tell(self, arch: Arch, score: float, record: dict[str, Any] | None = None) -> None:
        record = record or {}
        values = list(record.get("values") or [score])
        key = self.space.encode(arch)
        if arch not in self._pending:  # an earlier result (resume): make sure the study has it
            if key not in self._complete_archs and all(v == v for v in values):
                self._add_complete(arch, values, record)
            return
        trial, beat = self._pending.pop(arch)
        if beat is not None:
            beat.stop()
        from optuna.exceptions import UpdateFinishedTrialError

        try:
            for name, value in self._attrs(record, identity=False).items():  # arch, worker: set by claim
                trial.set_user_attr(name, value)
            self._set_constraints(trial, arch)
            state = self.study.tell(trial, values, skip_if_finished=True).state.name
        except UpdateFinishedTrialError:  # another worker failed it as stale between check and write
            state = "FAIL"
        if state != "COMPLETE" and key not in {
            t.user_attrs.get("arch") for t in self._trials(("COMPLETE",))
        }:
            # Declared dead (heartbeat) while evaluating: keep the result as a new trial.
            self._add_complete(arch, values, record)
        self._complete_archs.add(key)
        self._known.add(trial.number)
        self._streak = 0

    def tell_cached(self, arch: Arch, score: float, record: dict[str, Any] | None = None) -> None:
        self._streak += 1
        self._finish(arch, "FAIL", "duplicate")

    def reject(self, arch: Arch, reason: str) -> None:
        if reason != "infeasible":
            self._finish(arch, "FAIL", reason)
            return
        self._streak += 1
        trial, _ = self._pending.get(arch, (None, None))
        if trial is not None:
            trial.set_user_attr("arch", self.space.encode(arch))
            self._set_constraints(trial, arch)
        self._finish(arch, "PRUNED", "infeasible")

    # ---- sharing ------------------------------------------------------------------------------
    def sync(self) -> list[dict[str, Any]]:
        if not self.shared:
            return []
        new = []
        for t in self._trials(("COMPLETE",)):
            if t.number not in self._known:
                self._known.add(t.number)
                if "arch" in t.user_attrs:
                    self._complete_archs.add(t.user_attrs["arch"])
                    new.append(self._record(t))
        return new

    def shared_used(self) -> int | None:
        if not self.shared:
            return None
        self._reap()
        return sum(1 for t in self._trials(("RUNNING", "COMPLETE"))
                   if t.state.name == "COMPLETE" or "arch" in t.user_attrs)

    def pareto(self) -> list[str] | None:
        if len(self.directions) < 2:
            return None
        return [t.user_attrs["arch"] for t in self.study.best_trials if "arch" in t.user_attrs]

    def close(self) -> None:
        for arch in list(self._pending):
            self._finish(arch, "FAIL", "interrupted")
        engine = getattr(self._storage, "engine", None)
        if engine is not None:
            engine.dispose()

    # ---- trial contents -----------------------------------------------------------------------
    def _attrs(self, record: dict[str, Any], identity: bool = True) -> dict[str, Any]:
        attrs = {"params": record.get("params"), "macs": record.get("macs"),
                 "seconds": record.get("time"), "metrics": record.get("metrics", {})}
        if identity:
            attrs.update(arch=record.get("arch"), worker=WORKER_ID)
        return {k: v for k, v in attrs.items() if v is not None}

    def _constraints(self, arch: Arch) -> dict[str, float]:
        return self._violations(arch) if self._violations is not None else {}

    def _set_constraints(self, trial: Any, arch: Arch) -> None:
        """Constraint violations (<= 0: satisfied) where constraint-aware samplers read them."""
        violations = self._constraints(arch)
        if self._has_set_constraint:
            for name, value in violations.items():
                trial.set_constraint(name, value)
        elif violations:
            trial.set_user_attr("constraints", list(violations.values()))

    def _add_complete(self, arch: Arch, values: list[float], record: dict[str, Any]) -> None:
        optuna = self._optuna
        dists = {n: optuna.distributions.CategoricalDistribution(list(o)) for n, o in self._params.items()}
        attrs = self._attrs({**record, "arch": self.space.encode(arch)})
        violations = self._constraints(arch)
        if not self._has_set_constraint and violations:
            attrs["constraints"] = list(violations.values())
        frozen = optuna.trial.create_trial(
            params=dict(zip(self._params, arch)), distributions=dists, values=values, user_attrs=attrs,
        )
        if self._has_set_constraint:
            for name, value in violations.items():
                frozen.set_constraint(name, value)
        self.study.add_trial(frozen)
        self._complete_archs.add(attrs["arch"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
