"""``executor: ray``: the same spec, with its shards spread over a Ray cluster.

What runs where
    - Shard-scope steps: one Ray task per shard, each calling :func:`run_shard_task`, the same
      function the local executor calls. Outputs, markers, the manifest, the cache and lineage
      therefore take the local executor's form, and a re-run skips every shard that has a
      marker, whoever wrote it. A model's floats can differ in the last bit (and a decision
      taken on them), as Ray runs each worker with one intra-op thread (README, "Floats from
      models").
    - Model steps (``step.uses_model``): a pool of actors. Each actor calls ``step.setup()``
      once (the model is loaded once per actor, not once per shard), with ``num_gpus_per_actor``
      GPUs, then takes shards one after another until the step is done; the pool is then freed
      for the next step.
    - The source and table-scope steps (dedup, sample by count, SQL with joins) run in the
      driver with DuckDB, as they do with the local executor.

Workers read their input shards and write their outputs themselves: on a cluster of more than
one machine the run directory (and ``run.cache_dir``) must be on a filesystem every node mounts.
They import curate and the plugins from their own node, so each task and actor first checks,
once per worker process, that this is the driver's code (curate_ray.samecode).

Failures
    A worker, actor or node that dies takes its shard with it; Ray re-runs the shard (tasks: up
    to ``max_retries`` times; actors are restarted, re-running ``setup()``, and their shards are
    retried). Shards write atomically and are idempotent, so a re-run shard gives the same files.
    An exception in a step is a bug or bad data, not bad luck: it is not retried, and fails the
    run as the step's ``StepError`` naming the shard. If the driver dies, ``curate run`` again
    resumes: shards with markers are not redone, and no actor is started for a step whose
    shards are all done. If the cluster itself stops answering (its head's processes ended),
    the run fails within CURATE_RAY_LOST_DEADLINE, saying what was kept and how to go on
    (curate_ray.watch); Ray's own answer was to end the process 60 s later, without a word.

Why Ray core and not Ray Data
    Here the unit of work is a shard file with its marker, written by ``run_shard_task``; the
    data never needs to travel through Ray's object store, only a few bytes of statistics do.
    Ray Data would carry nothing but shard descriptors through ``map_batches``, and its own
    Parquet writer names files its own way, without markers, so resume and lineage would be
    lost if it wrote the outputs. Meanwhile it adds about a second of planning per step (40
    trivial shards: 1 s through ``map_batches`` against 0.05 s as tasks, measured with ray
    2.60 on 2 CPUs), its own progress logging, and a resource budget that, with the small
    object store a local run needs, ran one task at a time. Tasks with ``max_retries`` and
    actors with ``max_restarts`` give the same fault tolerance directly, and the step's own
    ``StepError`` comes back intact.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import Field, field_validator, model_validator

from curate.display import visible
from curate.errors import CurateError, StepError
from curate.executor import Executor, ShardDone
from curate.params import Params
from curate.schema import Schema
from curate.shards import ShardStats, ShardTask, run_shard_task
from curate.step import Step, StepContext
from curate_ray.address import ACCEPTED, ADDRESS_VARIABLE, LOOPBACK_SWITCH, form_problem, to_join
from curate_ray.authentication import check_token, no_token, token_error
from curate_ray.deadlines import (CONNECT_DEADLINE, CONNECT_DEADLINE_ENV, LOST_DEADLINE, LOST_DEADLINE_ENV,
                                  NO_CPU_DEADLINE, NO_CPU_DEADLINE_ENV, seconds)
from curate_ray.probe import check_answers
from curate_ray.samecode import Package, check_same_code, driver_code
from curate_ray.watch import ClusterLost, ClusterWatch, watch_cluster

logger = logging.getLogger(__name__)

_NOT_FINGERPRINTED = {"fingerprint": False}  # where shards run never changes what they contain

# Shards travel through the filesystem; the object store only carries the step, its context and
# per-shard statistics, so a local cluster does not need Ray's default of 30% of memory.
LOCAL_OBJECT_STORE_BYTES = 256 * 2**20

# Shards in flight per CPU (tasks) or per actor: one running and one queued behind it, so a
# worker that finishes a shard starts the next without waiting for the driver.
IN_FLIGHT_PER_SLOT = 2
# The longest the driver waits on Ray before it looks whether the cluster still answers
# (curate_ray.watch): a dead cluster is noticed within CURATE_RAY_LOST_DEADLINE and this.
WAIT_STEP = 1.0


class RayParams(Params):
    address: str | None = Field(
        None,
        description="None (or 'local'): start a local Ray cluster on loopback for the run and stop it at "
        "the end; 'auto', 'HOST:PORT' or 'ray://HOST:10001': connect to a running cluster",
        json_schema_extra=_NOT_FINGERPRINTED,
    )
    num_cpus: int | None = Field(
        None, ge=1, le=4096, description="CPUs of the local cluster (default: all of this machine's)",
        json_schema_extra=_NOT_FINGERPRINTED,
    )
    num_gpus_per_actor: float = Field(
        0, ge=0, le=64, description="GPUs each actor of a model step holds (fractions share a GPU)",
        json_schema_extra=_NOT_FINGERPRINTED,
    )
    actors: int | None = Field(
        None, ge=1, le=4096,
        description="actors for model steps (default: as many as the cluster's CPUs, or GPUs, hold)",
        json_schema_extra=_NOT_FINGERPRINTED,
    )
    max_retries: int = Field(
        3, ge=0, le=100, description="times a shard is re-run after its worker, actor or node died",
        json_schema_extra=_NOT_FINGERPRINTED,
    )

    @field_validator("address")
    @classmethod
    def _an_address_curate_can_check(cls, address: str | None) -> str | None:
        """Only an address curate can ask before ray.init waits on it (~821 s for one that never
        answers): refused at validation, not found out during a run. 'local' is the run's own
        cluster, as no address is, and becomes None here so that everything else (the loopback-bound
        cluster, num_cpus, untrusted specs) sees one value for it."""
        if address is not None and (problem := form_problem(address)) is not None:
            raise ValueError(f"{address!r} {problem}; the address is one of: {ACCEPTED}")
        return None if address == "local" else address

    @model_validator(mode="after")
    def _num_cpus_is_for_local_clusters(self) -> RayParams:
        if self.address is not None and self.num_cpus is not None:
            raise ValueError("'num_cpus' sizes the local cluster started when 'address' is not set (or "
                             "is local); a running cluster already has its CPUs")
        return self


# -- what runs on the workers (plain Python: wrapped with ray.remote when a step runs) ----------
def _check_input_visible(task: ShardTask) -> None:
    if not task.input.exists():
        raise CurateError(
            f"a Ray worker on {socket.gethostname()} cannot read {task.input}",
            hint="workers read and write the run directory themselves: put run.dir (and run.cache_dir) "
            "on a filesystem every node of the cluster mounts",
        )


def _setup_failed(step: Step, exc: Exception, shard: int | None) -> CurateError:
    if isinstance(exc, CurateError):
        return exc
    return StepError(step.label, shard, f"setup() failed: {type(exc).__name__}: {exc}")


def run_shard_on_worker(code: tuple[Package, ...], step: Step, task: ShardTask, ctx: StepContext,
                        expected: Schema) -> ShardStats:
    """One shard of a step without a model: its setup is cheap, so each task does it. ``code`` is
    the driver's (curate_ray.samecode): a worker that runs other code fails before it writes."""
    check_same_code(code)
    _check_input_visible(task)
    try:
        step.setup(ctx)
    except Exception as exc:
        raise _setup_failed(step, exc, task.index) from exc
    return run_shard_task(step, task, ctx, expected)


class ShardActor:
    """One set-up copy of a model step, taking shards one after another."""

    def __init__(self, code: tuple[Package, ...], step: Step, ctx: StepContext):
        self.step = step
        self.ctx = ctx
        # Other code than the driver's, or a failed setup, is reported by the first shard, as an
        # ordinary task error: an exception escaping __init__ would kill the actor and read as a
        # crash to be retried. Other code is not set up (its model is not loaded).
        self.failure: CurateError | None = None
        try:
            check_same_code(code)
        except CurateError as exc:
            self.failure = exc
            return
        try:
            step.setup(ctx)
        except Exception as exc:
            self.failure = _setup_failed(step, exc, None)

    def run(self, task: ShardTask, expected: Schema) -> ShardStats:
        if self.failure is not None:
            raise self.failure
        _check_input_visible(task)
        return run_shard_task(self.step, task, self.ctx, expected)


@functools.cache
def _remote(target: Any) -> Any:
    """``ray.remote`` once per function or class, not once per step (Ray exports each anew)."""
    import ray

    return ray.remote(target)


def _local_cluster_environment() -> None:
    """Before ray is imported: bind every process of a local cluster to loopback rather than to this
    machine's network address (ray's switch for it has this name), and send no usage statistics
    from a private cluster. Set for the whole process, so the raylet and workers see it too."""
    os.environ.setdefault(LOOPBACK_SWITCH, "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def _bind_to_loopback(ray: Any) -> None:
    """ray reads the loopback switch once, on first import; if something imported ray before the
    run (a notebook, ``pytest.importorskip``) the value it read is the one the IP lookup uses."""
    constants = getattr(getattr(ray, "_private", None), "ray_constants", None)
    if constants is not None and hasattr(constants, "ENABLE_RAY_CLUSTER"):
        constants.ENABLE_RAY_CLUSTER = os.environ[LOOPBACK_SWITCH].lower() in ("1", "true")


def _amount(resource: str, amount: float) -> str:
    return f"{amount / 2**30:.1f} GiB" if resource.endswith("memory") else f"{amount:g}"


class _Lost(Exception):
    """The cluster stopped answering (``why``, from curate_ray.watch) while ``shards`` ran; the
    executor turns it into a ClusterLost saying what was kept."""

    def __init__(self, why: str, shards: list[int] | None = None):
        super().__init__(why)
        self.why = why
        self.shards = shards or []


# -- the executor -------------------------------------------------------------------------------
class RayExecutor(Executor):
    name = "ray"
    description = "a Ray cluster: a task per shard, actor pools for model steps"
    requires = ("ray",)
    extra = "ray"
    Params = RayParams
    params: RayParams
    _watch = ClusterWatch([], LOST_DEADLINE)  # the session's (curate_ray.watch); outside one, none

    def untrusted_problems(self) -> list[tuple[str, str, str | None]]:
        """A cluster named by a spec from someone else would receive the run's steps and paths, and
        its replies are unpickled in this process (``ray.get``): whoever runs it could run code here.
        ``auto`` is the cluster this machine's user started (``ray start``, ``RAY_ADDRESS``)."""
        if self.params.address in (None, "auto"):
            return []
        return [("address", f"'{self.params.address}' names a Ray cluster to connect to, and the spec is untrusted "
                 "(run.untrusted / --untrusted): the run's data would go to that cluster, and what it sends "
                 "back is unpickled here, so whoever runs it could run code on this machine",
                 "leave address out to run on a local cluster, or set address: auto to join the cluster you "
                 "started (ray start, or RAY_ADDRESS)")]

    def where(self) -> str:
        """The cluster, without asking it (``plan`` connects to nothing): for ``auto``, where Ray
        will look (RAY_ADDRESS when set, read now as the run will)."""
        address = self.params.address
        if address is None:
            cpus = f"{self.params.num_cpus} CPUs" if self.params.num_cpus else "this machine's CPUs"
            return f"ray, a local Ray cluster of this run on loopback ({cpus})"
        if address != "auto":
            return f"ray, the Ray cluster at {address}"
        if (named := os.environ.get(ADDRESS_VARIABLE)) and named != "auto":  # as Ray reads it
            return f"ray, the Ray cluster at auto: {named} ({ADDRESS_VARIABLE})"
        return "ray, the Ray cluster at auto: the one started on this machine ('ray start')"

    @contextmanager
    def session(self) -> Iterator[None]:
        """Start a local cluster or connect to one; a driver that is already connected (a notebook,
        a test fixture) is used as it is and left running."""
        local = self.params.address is None
        if local:
            _local_cluster_environment()
        import ray

        if ray.is_initialized():
            self._check_gpus(ray)
            with self._watching(ray):
                yield
            return
        joining = None
        try:
            if local:
                _bind_to_loopback(ray)
                ray.init(address="local", num_cpus=self.params.num_cpus, include_dashboard=False,
                         object_store_memory=LOCAL_OBJECT_STORE_BYTES, logging_level=logging.WARNING)
            else:
                # Ray's own wait for an address that never answers is ~821 s: ask it first, whatever
                # named it (the spec, or for 'auto' RAY_ADDRESS, the cluster file, a running raylet).
                deadline = seconds(CONNECT_DEADLINE_ENV, CONNECT_DEADLINE)
                until = time.monotonic() + deadline
                joining = to_join(self.params.address)  # auto finding nothing: Ray's own error, at once
                # Refused connections are waited for only where a head may be starting (curate_ray.probe),
                # or for as long as the user set.
                check_answers(joining, deadline, wait_while_refused=CONNECT_DEADLINE_ENV in os.environ)
                # An answering cluster that wants a token this run does not send is refused by
                # ray.init only after ~20 s of retries, as if it were not there: ask first.
                check_token(joining, until)  # also turns on a token found here, as ray.init does for auto
                # What auto found on this machine is joined as asked: ray.init looking again could
                # find another raylet, unasked (curate_ray.address).
                ray.init(address=joining.address if joining.found_here else self.params.address,
                         logging_level=logging.WARNING)
        except Exception as exc:
            if not local and no_token(exc):  # RAY_AUTH_MODE=token without a token: Ray says so at once
                where = joining.where if joining is not None else str(self.params.address)
                raise token_error(where, exc) from None
            if not isinstance(exc, (ConnectionError, ValueError, RuntimeError)):
                raise
            where = f"the Ray cluster at {self.params.address}" if not local else "a local Ray cluster"
            raise CurateError(
                f"could not start or reach {where}: {exc}",
                hint="start one with 'ray start --head', or leave run.executor.params.address out "
                "to run a local cluster",
            ) from None
        try:
            self._check_gpus(ray)
            with self._watching(ray):
                yield
        finally:
            ray.shutdown()

    @contextmanager
    def _watching(self, ray: Any) -> Iterator[None]:
        self._watch = watch_cluster(ray, self.params.address, seconds(LOST_DEADLINE_ENV, LOST_DEADLINE))
        self._watch.start()
        try:
            yield
        finally:
            self._watch.stop()
            self._watch = ClusterWatch([], LOST_DEADLINE)

    def _check_gpus(self, ray: Any) -> None:
        """GPUs asked for that the cluster has not, said before the first step runs: it was said
        when the first model step started, after the steps before it had run (Ray probe)."""
        wanted = self.params.num_gpus_per_actor
        if wanted > 0 and (gpus := ray.cluster_resources().get("GPU", 0)) < wanted:
            raise CurateError(
                f"each actor needs {wanted:g} GPU{'s' if wanted > 1 else ''} "
                f"(run.executor.params.num_gpus_per_actor), and the Ray cluster has {gpus:g}",
                hint="connect to a cluster with GPUs (address), or set num_gpus_per_actor: 0 to run on CPUs",
            )

    def map_shards(self, step: Step, tasks: list[ShardTask], ctx: StepContext, expected: Schema,
                   on_done: ShardDone) -> list[ShardStats]:
        import ray

        if not ray.is_initialized():
            raise CurateError("the ray executor ran a step outside its session()",
                              hint="open 'with executor.session():' around map_shards (the engine does)")
        results: dict[int, ShardStats] = {}
        pending = []
        for task in tasks:
            if task.marker.exists():  # done before a crash: its recorded stats, nothing re-run
                results[task.index] = stats = run_shard_task(step, task, ctx, expected)
                on_done(stats)
            else:
                pending.append(task)
        if pending:

            def record(stats: ShardStats) -> None:
                results[stats.index] = stats
                on_done(stats)

            progress, ctx.progress = ctx.progress, None  # the observer stays in the driver
            try:
                # Before Ray is asked anything for this step: a cluster that died while the steps
                # before ran in the driver would block ray.put, or end this process (curate_ray.watch).
                if (why := self._watch.problem()) is not None:
                    raise _Lost(why)
                run = self._run_on_actors if step.uses_model else self._run_as_tasks
                self._lost_if_disconnected(lambda: run(ray, step, pending, ctx, expected, record))
            except _Lost as lost:
                raise self._lost_error(step, lost, len(results), len(tasks), ctx) from None
            finally:
                ctx.progress = progress
        return [results[task.index] for task in tasks]

    def _lost_error(self, step: Step, lost: _Lost, done: int, total: int, ctx: StepContext) -> ClusterLost:
        cluster = f"the Ray cluster at {self.params.address}" if self.params.address else \
            "this run's local Ray cluster"
        shards = ", ".join(map(str, lost.shards))
        running = f" (shard{'s' if len(lost.shards) > 1 else ''} {shards} in flight)" if lost.shards else ""
        run_dir = ctx.run_dir
        return ClusterLost(
            f"{cluster} stopped answering during step '{step.label}'{running}: {lost.why}. Kept in "
            f"{run_dir}: the steps before '{step.label}' and {done} of its {total} shards",
            hint=f"once the cluster is back, 'curate run --resume {run_dir}' goes on from there (what was "
            f"kept is not redone); or, without it, set run.executor to local in the spec and run 'curate run "
            f"SPEC --resume {run_dir}'; if the cluster comes back slowly, give it longer with "
            f"{LOST_DEADLINE_ENV}=SECONDS (now {self._watch.deadline:g})",
        )

    # -- shards as tasks -------------------------------------------------------------------------
    def _run_as_tasks(self, ray: Any, step: Step, tasks: list[ShardTask], ctx: StepContext,
                      expected: Schema, on_done: ShardDone) -> None:
        function = _remote(run_shard_on_worker).options(
            num_cpus=1, max_retries=self.params.max_retries, retry_exceptions=False
        )
        step_ref, ctx_ref, expected_ref = ray.put(step), ray.put(ctx), ray.put(expected)
        code_ref = ray.put(driver_code(self.plugins))
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        slots = [None] * (cpus * IN_FLIGHT_PER_SLOT)
        self._drain(ray, step, tasks, slots,
                    lambda _, task: function.remote(code_ref, step_ref, task, ctx_ref, expected_ref), on_done,
                    cancel_on_error=True)

    # -- shards on an actor pool -----------------------------------------------------------------
    def _run_on_actors(self, ray: Any, step: Step, tasks: list[ShardTask], ctx: StepContext,
                       expected: Schema, on_done: ShardDone) -> None:
        size = self._pool_size(ray, len(tasks))
        actor_class = _remote(ShardActor).options(
            num_cpus=1, num_gpus=self.params.num_gpus_per_actor,
            max_restarts=self.params.max_retries, max_task_retries=self.params.max_retries,
        )
        step_ref, ctx_ref, expected_ref = ray.put(step), ray.put(ctx), ray.put(expected)
        code_ref = ray.put(driver_code(self.plugins))
        actors = [actor_class.remote(code_ref, step_ref, ctx_ref) for _ in range(size)]
        lost = False
        try:
            self._drain(ray, step, tasks, actors * IN_FLIGHT_PER_SLOT,
                        lambda actor, task: actor.run.remote(task, expected_ref), on_done)
        except _Lost:
            lost = True  # the actors went with the cluster, and a call to kill them could block
            raise
        finally:
            if not lost:
                for actor in actors:  # frees their CPUs and GPUs for the next step
                    ray.kill(actor)

    def _pool_size(self, ray: Any, shards: int) -> int:
        resources = ray.cluster_resources()
        cpus = int(resources.get("CPU", 0))
        capacity = cpus
        gpus_per_actor = self.params.num_gpus_per_actor
        if gpus_per_actor > 0:
            gpus = resources.get("GPU", 0)
            capacity = min(cpus, int(gpus // gpus_per_actor))
            # No GPU for one actor is refused; no CPU is not (an autoscaling cluster's head has
            # none): the pool starts with one actor and the wait for a CPU is bounded (_check_cpus).
            if gpus < gpus_per_actor:  # said at session start; a cluster can lose its GPU nodes since
                self._check_gpus(ray)
        capacity = max(1, capacity)
        wanted = self.params.actors or capacity
        if wanted > capacity:
            # Actors the cluster cannot place would hold their shards forever.
            logger.warning("the Ray cluster holds %d actors of this size, not %d: using %d",
                           capacity, wanted, capacity)
            wanted = capacity
        return min(wanted, shards)

    # -- the one loop both share -----------------------------------------------------------------
    def _drain(self, ray: Any, step: Step, tasks: list[ShardTask], slots: list[Any],
               submit: Callable[[Any, ShardTask], Any], on_done: ShardDone, *,
               cancel_on_error: bool = False) -> None:
        """Keep every slot busy and report shards as they finish, in any order.

        A bounded number in flight (Ray's "limit pending tasks with ray.wait" pattern) keeps
        lower-numbered shards first, so a crash leaves few half-done ones, and remembers which
        shard each future is, so an error names it (``ray.util.ActorPool`` forgets that).
        """
        queue, free = deque(tasks), deque(slots)
        running: dict[Any, tuple[ShardTask, Any]] = {}
        # Shards wait for a CPU as long as the cluster has one (a long shard, a busy cluster); on a
        # cluster with none they wait for its autoscaler, and that wait is bounded.
        no_cpu_deadline = seconds(NO_CPU_DEADLINE_ENV, NO_CPU_DEADLINE)
        quiet_since = time.monotonic()
        try:
            while queue or running:
                while queue and free:
                    slot, task = free.popleft(), queue.popleft()
                    running[submit(slot, task)] = (task, slot)
                wait = max(0.0, min(WAIT_STEP, quiet_since + no_cpu_deadline - time.monotonic()))
                done, _ = self._lost_if_disconnected(lambda: ray.wait(list(running), num_returns=1, timeout=wait))
                if not done and (why := self._watch.lost()) is not None:
                    raise _Lost(why)
                if not done and time.monotonic() - quiet_since >= no_cpu_deadline:
                    if (why := self._watch.problem()) is not None:  # asking for resources would block
                        raise _Lost(why)
                    self._check_cpus(ray, step, no_cpu_deadline)
                    quiet_since = time.monotonic()
                for ref in done:
                    quiet_since = time.monotonic()
                    task, slot = running.pop(ref)
                    free.append(slot)
                    on_done(self._lost_if_disconnected(lambda: self._result(ray, ref, step, task)))
        except _Lost as lost:  # Ray is asked nothing more: its shards are gone with the cluster
            lost.shards = sorted({*lost.shards, *(task.index for task, _ in running.values())})
            raise
        except BaseException:
            if cancel_on_error:  # a failed run stops its other shards (actors are killed instead)
                for ref in running:
                    try:
                        ray.cancel(ref)
                    except Exception:  # finished or gone meanwhile; the error being raised matters more
                        logger.debug("could not cancel %s", ref, exc_info=True)
            raise

    def _lost_if_disconnected(self, call: Callable[[], Any]) -> Any:
        """``call()``; a ConnectionError from it is a lost cluster where the watch says so. Ray's client
        (``ray://``) blocks a call while it reconnects to a client server that is gone (~30 s) and
        then raises ConnectionError: the run fails as a lost cluster, not with an internal error."""
        try:
            return call()
        except ConnectionError:
            if (why := self._watch.problem()) is not None:
                raise _Lost(why) from None
            raise

    def _check_cpus(self, ray: Any, step: Step, waited: float) -> None:
        """After ``waited`` seconds without a shard finishing: fine while the cluster has CPUs; with
        none, no shard can start (each needs one), so say so rather than wait for ever."""
        resources = ray.cluster_resources()
        if resources.get("CPU", 0) > 0:
            return
        where = f"at {self.params.address}" if self.params.address is not None else "of this run"
        held = ", ".join(f"{visible(name)}: {_amount(name, amount)}" for name, amount in sorted(resources.items())
                         if not name.startswith("node:")) or "none"  # node:IP: one per node, nothing to run on
        raise CurateError(
            f"the shards of step '{step.label}' waited {waited:g} s for a CPU, and the Ray cluster {where} "
            f"has none (its resources: {held}); each shard needs 1",
            hint="add nodes with CPUs to the cluster (or let its autoscaler start some: see 'ray status'); if "
            f"they take longer to come up, give them longer with {NO_CPU_DEADLINE_ENV}=SECONDS (now {waited:g})",
        )

    def _result(self, ray: Any, ref: Any, step: Step, task: ShardTask) -> ShardStats:
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the step raised: its own error, unwrapped
            cause = exc.cause
            if isinstance(cause, CurateError):
                raise cause from None
            raise StepError.from_exception(step.label, task.index, cause) from None
        except ray.exceptions.RayError as exc:  # the worker, actor or node died once too often
            if (why := self._watch.problem()) is not None:  # or the whole cluster did
                raise _Lost(why, [task.index]) from None
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "no details"
            tries = self.params.max_retries + 1
            raise StepError(
                step.label, task.index,
                f"its Ray worker died on each of {tries} tr{'ies' if tries != 1 else 'y'} "
                f"({type(exc).__name__}: {first_line})",
                hint="look for out-of-memory kills in the Ray logs (/tmp/ray/session_latest/logs), "
                "or raise run.executor.params.max_retries",
            ) from None
