"""Map a pure function over batches, and run independent tasks: in this machine's processes, or on a Ray cluster.

With $FER_AUDIT_RAY_ADDRESS unset (the default) everything runs here and ray is never imported. With it set
(the variable that also sends training runs to the cluster's Jobs API), `map_batches` runs as Ray Data
`map_batches` over the cluster's workers and `run_tasks` as Ray tasks, each with its share of the cluster's
CPUs (or a GPU when it has some). This process joins the cluster as a driver: at $RAY_ADDRESS (Ray's own
variable: `HEAD:6379`, or `ray://HEAD:10001` through Ray Client) when set, else through the Ray node running
on this machine (`ray start --address=HEAD:6379`, or the head itself).

What travels: the `fer_core` package's source (Ray's `py_modules`, uploaded once per process), each function
and its arguments by value, and the results back. The workers need the project's Python packages (as for
training jobs) and, for a function given file paths (decoding), those paths on a file system they share.
Results come back in the order of the inputs, as they do locally: the two paths give identical results.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RAY_ADDRESS_ENV = "FER_AUDIT_RAY_ADDRESS"
SHARED_ARRAY_BYTES = 1 << 20  # an array argument this large, given to several tasks, goes to the object store once


def cluster_configured() -> bool:
    """True when the heavy stages go to a Ray cluster ($FER_AUDIT_RAY_ADDRESS set)."""
    return bool(os.environ.get(RAY_ADDRESS_ENV))


def map_batches(function: Callable[[Any], Any], items: Sequence, batch_size: int, *, local_processes: int = 1,
                num_cpus: float = 1.0, environment: dict[str, str] | None = None) -> Generator[Any, None, None]:
    """`function(items[start:start + batch_size])` for consecutive batches, yielded in order as they finish.

    `function` must be pure and picklable (a module-level function or a `functools.partial` of one): on a
    cluster, and locally with `local_processes` > 1, it runs in other processes. On a cluster each batch takes
    `num_cpus` and runs in a worker with `environment` added to its variables (`thread_environment`).
    Empty `items`: nothing. A caller that stops early calls `close()`: the batches not yet done are cancelled.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    batches = [items[start:start + batch_size] for start in range(0, len(items), batch_size)]
    if cluster_configured() and batches:
        return _map_on_ray(function, batches, num_cpus, environment or {})
    return _map_locally(function, batches, local_processes)


def _map_locally(function: Callable[[Any], Any], batches: list, processes: int) -> Generator[Any, None, None]:
    workers = max(1, min(processes, len(batches)))
    if workers == 1:
        yield from map(function, batches)
        return
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=workers)
    try:
        yield from pool.map(function, batches)
    finally:
        pool.shutdown(cancel_futures=True)


@dataclass(frozen=True)
class _Opaque:
    """A value Ray Data carries as one pickled object, whatever its type (arrays of any shape, lists of tuples)."""

    value: Any


@dataclass(frozen=True)
class _ApplyToBatch:
    """The Ray Data batch function: each row holds one of the caller's batches."""

    function: Callable[[Any], Any]

    def __call__(self, rows: dict) -> dict:
        import numpy as np

        results = np.empty(len(rows["index"]), dtype=object)
        for position, batch in enumerate(rows["batch"]):
            results[position] = _Opaque(self.function(batch.value))
        return {"index": rows["index"], "result": results}


def _map_on_ray(function: Callable[[Any], Any], batches: list, num_cpus: float,
                environment: dict[str, str]) -> Generator[Any, None, None]:
    """One Ray Data row per batch (so the caller's batch is the unit of work), mapped on the cluster."""
    ray = connect()
    rows = [{"index": index, "batch": _Opaque(batch)} for index, batch in enumerate(batches)]
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        _ApplyToBatch(function), batch_size=1, batch_format="numpy", num_cpus=num_cpus,
        **({"runtime_env": {"env_vars": environment}} if environment else {}))
    waiting: dict[int, Any] = {}
    next_index = 0
    for finished in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        waiting.update(zip(finished["index"].tolist(), (result.value for result in finished["result"])))
        while next_index in waiting:  # hold a batch that finished early until those before it are back
            yield waiting.pop(next_index)
            next_index += 1
    if next_index != len(batches):
        raise RuntimeError(f"Ray Data returned {next_index} of {len(batches)} batches")


def thread_environment(threads: int) -> dict[str, str]:
    """Environment variables that size TensorFlow's and OpenMP's thread pools to a worker's share of CPUs: by
    default each would take every core of the node, and a node's tasks would oversubscribe it many times."""
    return {name: str(threads) for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")}


@dataclass(frozen=True)
class TaskShare:
    """What one task asks the cluster for."""

    cpus: int
    gpus: float


def cluster_share(task_count: int) -> TaskShare:
    """Each of `task_count` tasks' share of the cluster: its CPUs split evenly (at least one each), and one GPU
    per task when the cluster has GPUs (tasks then queue for them)."""
    resources = connect().cluster_resources()
    cpus = max(1, int(resources.get("CPU", 1)) // max(1, task_count))
    return TaskShare(cpus=cpus, gpus=1.0 if resources.get("GPU", 0) >= 1 else 0.0)


def run_tasks(function: Callable[..., Any], argument_list: Sequence[tuple], *, share: TaskShare | None = None,
              environment: dict[str, str] | None = None, on_done: Callable[[int, Any], None] | None = None,
              check_stop: Callable[[], None] | None = None) -> list[Any]:
    """`function(*arguments)` for each tuple of `argument_list`: results in that order.

    Here they run one after the other; on a cluster all at once, each as a Ray task with `share` (default:
    `cluster_share`) in a fresh worker process with `environment` added to its variables (`thread_environment`:
    set before the process starts). `on_done(index, result)` is called as each finishes (on a cluster in the
    order they finish). `check_stop` is called between them (locally) or every second (on a cluster); whatever
    it raises cancels the tasks still running and is raised here.
    """
    if not cluster_configured():
        results = []
        for index, arguments in enumerate(argument_list):
            if check_stop is not None:
                check_stop()
            results.append(function(*arguments))
            if on_done is not None:
                on_done(index, results[-1])
        return results
    return _run_on_ray(function, argument_list, share or cluster_share(len(argument_list)), environment or {},
                       on_done, check_stop)


def _run_on_ray(function: Callable[..., Any], argument_list: Sequence[tuple], share: TaskShare,
                environment: dict[str, str], on_done: Callable[[int, Any], None] | None,
                check_stop: Callable[[], None] | None) -> list[Any]:
    import numpy as np

    ray = connect()
    # A fresh process per task (its own environment: Ray starts workers per environment, and `max_calls`
    # ends each after its task), so a framework's threads and device memory are set up for this share.
    remote = ray.remote(max_calls=1)(_call).options(num_cpus=share.cpus, num_gpus=share.gpus,
                                                    runtime_env={"env_vars": {"FER_AUDIT_TASK": "1", **environment}})
    stored: dict[int, Any] = {}  # id of a large array → its object-store reference, put once for every task

    def travel(value: Any) -> Any:
        if isinstance(value, np.ndarray) and value.nbytes >= SHARED_ARRAY_BYTES:
            if id(value) not in stored:
                stored[id(value)] = ray.put(value)
            return stored[id(value)]
        return value

    pending = {remote.remote(function, *map(travel, arguments)): index for index, arguments in enumerate(argument_list)}
    results: list[Any] = [None] * len(pending)
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for reference in done:
                index = pending.pop(reference)
                results[index] = ray.get(reference)
                if on_done is not None:
                    on_done(index, results[index])
            if check_stop is not None:
                check_stop()
    except BaseException:
        for reference in pending:
            ray.cancel(reference, force=True)
        raise
    return results


def _call(function: Callable[..., Any], *arguments: Any) -> Any:
    """A Ray task's body: the function travels as an argument, so any picklable callable (a partial) runs."""
    return function(*arguments)


def _check_reachable(address: str, seconds: float = 5.0) -> None:
    """ValueError (one line) when a HOST:PORT (or ray://HOST:PORT) address does not answer within `seconds`:
    ray.init would retry such an address for minutes before giving up."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as error:
        raise ValueError(f"{RAY_ADDRESS_ENV} is set but no Ray cluster answers at {address!r} ({error}): check "
                         f"RAY_ADDRESS (the head's HOST:6379, or ray://HOST:10001)") from None


def connect() -> Any:
    """The `ray` module, this process joined to the cluster as a driver (once), with fer_core shipped along."""
    import logging

    import ray

    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS") or os.environ[RAY_ADDRESS_ENV]
        if address.startswith(("http://", "https://")):  # the Jobs API's address: join through this machine's node
            address = "auto"
        _check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING,
                     runtime_env={"py_modules": [str(Path(__file__).resolve().parent)], "excludes": ["__pycache__"]})
        except ConnectionError as error:
            raise ValueError(f"{RAY_ADDRESS_ENV} is set but no Ray cluster was reached at {address!r}: set "
                             f"RAY_ADDRESS to the head's HOST:6379 (or ray://HOST:10001), or start a Ray node on "
                             f"this machine ({error})") from None
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the callers show their own progress
    context.enable_fallback_to_arrow_object_ext_type = True  # our rows are pickled objects, on purpose
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "Progress bars disabled"
    return ray
