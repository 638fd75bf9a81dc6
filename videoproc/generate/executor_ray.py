"""The generation queue on a Ray cluster: one actor per GPU, each running one request at a time.

Each actor loads the models once and calls `worker.run_request`, which writes the MP4 and then the
record file straight to the output storage and returns only a small `Outcome`, so videos never
pass through the driver. The driver holds the output lock for the whole run and hands each actor
the next pending request when it finishes one (a pull loop: a long request never holds up a free
actor), counts the outcomes and prints progress.

Why a lost actor cannot get a request recorded twice. A request's record is one file named by its
id, written after its MP4. When an actor dies (its node lost, a crash in the engine, out of host
memory), the driver first looks for that record: an actor that committed it just before dying did
finish the request. Otherwise the request goes back to the queue for another actor, for at most
MAX_ATTEMPTS attempts in all; a later attempt overwrites the same MP4 and writes the same record
file. After the last attempt the driver commits a failed record naming the loss, so a request that
kills every actor that runs it fails alone, and a re-run retries it. A dead actor is replaced
(at most as many times as there were actors) when the cluster has room for it.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from videoproc.common.errors import OptionsError
from videoproc.common.ray_cluster import enter_driver_folder, first_line, joined, not_shared
from videoproc.common.storage import exists
from videoproc.generate.engines import EngineError
from videoproc.generate.options import GenerateOptions
from videoproc.generate.worker import Outcome, Worker, completed_record, open_engines, record_lost, run_request

# Attempts per request, the first included: an actor lost mid-request is usually its node's fault,
# so one more try elsewhere is worth it; a request that has killed three actors is the problem.
MAX_ATTEMPTS = 3
# How long the driver waits for an actor to start when none is working: loading a large model on a
# busy cluster takes minutes, and an actor that asks for more than the cluster has never starts.
ACTOR_START_TIMEOUT_S = 900.0


class RequestActor:
    """One Ray actor: the models loaded once, then one request per `run` call. Wrapped with
    `ray.remote` when the run starts, since Ray is imported only then.

    folder: the driver's working folder. An actor owns its worker process, so moving it there
    affects nothing else, and a relative `input_reference` or model path names what it names for
    the driver; on a node without that folder such a path fails its request as a missing file.
    """

    def __init__(self, worker: Worker, *, engine_factory: Callable, folder: str) -> None:
        enter_driver_folder(folder)
        self.worker = worker
        open_engines(worker, engine_factory)

    def ready(self) -> int:
        return os.getpid()

    def run(self, raw: dict, row: int) -> Outcome:
        return run_request(raw, row, self.worker)


@dataclass(kw_only=True)
class Cluster:
    """The connected cluster and the actors a run gets there: `actors` of one GPU each when
    `device` is cuda, else of one CPU each."""

    ray: Any
    address: str
    device: str
    actors: int
    log: TextIO

    def describe(self) -> str:
        unit = "GPU" if self.device == "cuda" else "CPU"
        return f"on the Ray cluster at {self.address}, {self.actors} actors of one {unit}"

    def run(self, rows: list[dict], todo: list[int], worker: Worker, *, engine_factory: Callable,
            on_outcome: Callable[[Outcome], None]) -> int:
        """Run the rows `todo` on the actors; returns how many were left without a record."""
        if not todo:
            return 0
        gpus = 1 if self.device == "cuda" else 0
        actor_class = self.ray.remote(RequestActor).options(num_cpus=1, num_gpus=gpus, max_restarts=0)
        start = lambda: actor_class.remote(worker, engine_factory=engine_factory, folder=os.getcwd())  # noqa: E731
        dispatch = _Dispatch(ray=self.ray, rows=rows, todo=todo, worker=worker, start=start,
                             on_outcome=on_outcome, log=self.log)
        return dispatch.run(actors=min(self.actors, len(todo)))


@contextlib.contextmanager
def connect(opts: GenerateOptions, *, log: TextIO) -> Iterator[Cluster]:
    """Join the cluster at `opts.ray_address` for the duration and size the run's actors."""
    with joined(opts.ray_address) as ray:
        yield _plan(ray, opts, log=log)


def _plan(ray: Any, opts: GenerateOptions, *, log: TextIO) -> Cluster:
    resources = ray.cluster_resources()
    address = opts.ray_address or "the default address"
    device = _device(opts, gpus=int(resources.get("GPU", 0)), address=address)
    unit = "GPU" if device == "cuda" else "CPU"
    capacity = int(resources.get(unit, 0))
    actors = opts.ray_actors or (capacity if device == "cuda" else _cpu_nodes(ray))
    if actors > capacity:
        raise OptionsError(
            f"--ray-actors {actors} needs {actors} {unit}s (one per actor) but the Ray cluster at {address} "
            f"has {capacity}; pass --ray-actors {max(capacity, 1)} or fewer, or add nodes"
        )
    return Cluster(ray=ray, address=address, device=device, actors=max(actors, 1), log=log)


def _device(opts: GenerateOptions, *, gpus: int, address: str) -> str:
    """cuda when the cluster has GPUs (or must, for --device cuda and TensorRT-LLM), else cpu."""
    wants_gpu = opts.device == "cuda" or opts.engine == "tensorrt-llm"
    if wants_gpu and not gpus:
        asked = "--engine tensorrt-llm" if opts.engine == "tensorrt-llm" else "--device cuda"
        raise OptionsError(f"{asked} needs GPUs but the Ray cluster at {address} has none; add GPU nodes, "
                           "or use --engine diffusers --device cpu")
    return "cuda" if gpus and opts.device != "cpu" else "cpu"


def _cpu_nodes(ray: Any) -> int:
    # One CPU actor per node by default: CPU generation is for demos and tests, and it keeps a
    # 1-CPU actor from competing with others for the same cores.
    return sum(1 for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= 1)


class _Dispatch:
    """The driver's pull loop. Every actor is in one of three maps: `starting` (its ready call in
    flight), `idle`, or `running` (a request call in flight); `pending` holds rows not handed out."""

    def __init__(self, *, ray: Any, rows: list[dict], todo: list[int], worker: Worker, start: Callable[[], Any],
                 on_outcome: Callable[[Outcome], None], log: TextIO) -> None:
        self.ray, self.rows, self.worker, self.start = ray, rows, worker, start
        self.on_outcome, self.log = on_outcome, log
        self.pending: deque[int] = deque(todo)
        self.attempts: Counter[int] = Counter()
        self.starting: dict[Any, Any] = {}
        self.running: dict[Any, tuple[Any, int]] = {}
        self.idle: list[Any] = []
        self.spares = 0
        self.ever_ready = False
        self.start_errors: list[str] = []

    def run(self, *, actors: int) -> int:
        self.spares = actors
        for _ in range(actors):
            self._start_actor()
        try:
            while self.pending or self.running:
                self._hand_out()
                if not (self.running or self.starting):
                    break
                self._wait_one()
        finally:
            self._stop_actors()
        if self.pending and not self.ever_ready:
            causes = "; ".join(list(dict.fromkeys(self.start_errors))[:2]) or "none started"
            raise EngineError(f"no Ray actor could load the models: {causes}; fix that and re-run")
        return len(self.pending)

    def _start_actor(self) -> None:
        actor = self.start()
        self.starting[actor.ready.remote()] = actor

    def _hand_out(self) -> None:
        while self.idle and self.pending:
            actor, row = self.idle.pop(), self.pending.popleft()
            self.running[actor.run.remote(self.rows[row], row)] = (actor, row)

    def _wait_one(self) -> None:
        timeout = None if self.running else ACTOR_START_TIMEOUT_S
        done, _ = self.ray.wait([*self.starting, *self.running], num_returns=1, timeout=timeout)
        if not done:
            self._note(f"no Ray actor started within {ACTOR_START_TIMEOUT_S:.0f} s: the cluster has no free "
                       "GPU or CPU for one; the requests left will be run by the next run")
            self.start_errors.append(f"none started within {ACTOR_START_TIMEOUT_S:.0f} s")
            self._stop_actors()
        elif done[0] in self.starting:
            self._started(done[0])
        else:
            self._finished(done[0])

    def _started(self, ref: Any) -> None:
        actor = self.starting.pop(ref)
        try:
            self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            self.start_errors.append(_cause(exc))
            self._note(f"a Ray actor failed to start: {_cause(exc)}")
            return
        self.ever_ready = True
        self.idle.append(actor)

    def _finished(self, ref: Any) -> None:
        actor, row = self.running.pop(ref)
        try:
            outcome = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as exc:
            self._lost(actor, row, exc)
            return
        # Anything else raised in run_request (a storage failure after its retries, a bug) stops
        # the run, as it does in the local loop; the request stays unrecorded for the next run.
        self._check_shared(outcome)
        self.idle.append(actor)
        self.on_outcome(outcome)

    def _lost(self, actor: Any, row: int, exc: BaseException) -> None:
        self.attempts[row] += 1
        _kill(self.ray, actor)
        raw = self.rows[row]
        self._note(f"the Ray actor running queue row {row} was lost ({first_line(exc)}); "
                   f"attempt {self.attempts[row]} of {MAX_ATTEMPTS}")
        done = completed_record(raw, row, self.worker)
        if done is not None:
            self.on_outcome(done)
        elif self.attempts[row] < MAX_ATTEMPTS:
            self.pending.appendleft(row)
        else:
            self.on_outcome(record_lost(raw, row, self.worker, _lost_error(self.attempts[row], exc)))
        if self.pending and self.spares:
            self.spares -= 1
            self._start_actor()

    def _check_shared(self, outcome: Outcome) -> None:
        record = self.worker.out.child("records", f"{outcome.key}.parquet")
        if self.worker.out.is_local and not exists(record):
            raise OptionsError(not_shared(f"a Ray actor committed the record of {outcome.id!r}", record.url))

    def _stop_actors(self) -> None:
        # An interrupted or failed run must not leave actors holding GPUs; a request cut short
        # leaves at most a hidden partial MP4, which the next run removes.
        for actor in [*self.starting.values(), *self.idle, *(a for a, _ in self.running.values())]:
            _kill(self.ray, actor)
        self.starting, self.idle, self.running = {}, [], {}

    def _note(self, text: str) -> None:
        print(f"generate: {text}", file=self.log, flush=True)


def _lost_error(attempts: int, exc: BaseException) -> str:
    return (f"the Ray actor running this request died {attempts} times (last: {first_line(exc)}); "
            "re-run to retry it, and see the Ray logs of its nodes for why (out of memory, a crash in the engine)")


def _cause(exc: BaseException) -> str:
    """The last line of the traceback Ray wraps an actor's start-up error in: the actual error."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _kill(ray: Any, actor: Any) -> None:
    with contextlib.suppress(Exception):  # already dead, or its node gone: nothing left to stop
        ray.kill(actor, no_restart=True)
