"""``--workers K``: K-1 extra processes on this machine join the parent's shared study.

Each worker is a full search loop without an output folder (the parent logs everything it learns
from the study); it builds its own evaluator (an evaluator may hold a model whose state changes
while evaluating, so it is not shared) and uses its own seed so samplers do not propose in lockstep.
Processes are started with ``spawn``: forking a process that already runs torch threads is unsafe.
"""

from __future__ import annotations

import multiprocessing
import signal
from typing import Any, Callable, Sequence


def start_workers(
    run: Callable[..., Any],
    n: int,
    evaluator_factory: Callable[[], Any],
    searcher: str,
    options: dict[str, Any],
    budget: int,
    seed: int,
    max_params: float | None,
    max_macs: float | None,
    objectives: Sequence[str],
) -> list[Any]:
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for i in range(1, n + 1):
        proc = ctx.Process(
            target=_worker_main,
            args=(run, evaluator_factory, searcher, options, budget, seed + i, max_params, max_macs,
                  list(objectives)),
            name=f"nas-search-worker-{i}",
            daemon=True,
        )
        proc.start()
        procs.append(proc)
    return procs


def join_workers(procs: list[Any], abort: bool = False) -> None:
    """Wait for the workers (stop them first when the parent is aborting); report failures."""
    import sys

    for proc in procs:
        if abort and proc.is_alive():
            proc.terminate()  # SIGTERM: the worker fails its running trial and exits
    for proc in procs:
        proc.join()
    failed = [p for p in procs if p.exitcode not in (0, None) and not abort]
    for proc in failed:
        print(f"warning: {proc.name} exited with code {proc.exitcode}; the other workers carried on",
              file=sys.stderr)


def _worker_main(search, evaluator_factory, searcher, options, budget, seed, max_params, max_macs,
                 objectives):
    """One worker: ``search`` (the driver's function, passed in so this module does not import
    the driver) over its own evaluator."""
    from nas._errors import NasUsageError

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    _exit_with_parent()
    try:
        search(evaluator_factory(), searcher, budget, seed=seed, max_params=max_params,
               max_macs=max_macs, objectives=objectives, options=options)
    except KeyboardInterrupt:
        raise SystemExit(130)
    except NasUsageError as exc:
        import sys

        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2)


def _exit_with_parent(poll: float = 0.5, grace: float = 30.0) -> None:
    """A worker whose parent dies (killed, so it never stops its workers) stops too: a thread sees
    the parent gone (the parent's process sentinel, else a changed ``os.getppid()``) and sends
    this process SIGTERM (its running trial is failed and re-queued, then it exits); a worker
    stuck that long in native code is ended ``grace`` seconds later."""
    import os
    import threading

    parent = multiprocessing.parent_process()
    ppid = os.getppid()

    def watch() -> None:
        from multiprocessing.connection import wait

        while True:
            if parent is not None and parent.sentinel is not None:
                if wait([parent.sentinel], timeout=poll):
                    break
            else:
                threading.Event().wait(poll)
            if os.getppid() != ppid:
                break
        os.kill(os.getpid(), signal.SIGTERM)
        threading.Event().wait(grace)
        os._exit(1)

    threading.Thread(target=watch, name="nas-parent-watch", daemon=True).start()
