"""Calls from the Dask backend's client to the cluster that tell a lost scheduler from a lost worker and from a
slow one: :class:`SchedulerCalls`, the base of :class:`~distlda.dask.backend.DaskEStep`.

- A call to the scheduler (:meth:`SchedulerCalls._guard`): a lost connection becomes
  :class:`~distlda.dask.errors.SchedulerLost`, naming the scheduler; a connection error while the scheduler still
  answers (a worker died under the call) is tried again, for up to the stall limit.
- A wait for tasks (:meth:`SchedulerCalls._results`): their results are taken straight from the workers, in one
  transfer that goes on across the polls of the cluster's state; a worker the tasks were cut for that leaves
  raises :class:`~distlda.dask.errors.WorkerLost` (its tasks may run nowhere else), a cluster without workers for
  the stall limit :class:`~distlda.dask.errors.DaskTimeout`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import time
from concurrent.futures import CancelledError
from typing import Any, Callable
from urllib.parse import urlsplit

from distlda.core.estep import TrainingStats
from distlda.dask.errors import DaskClusterError, DaskTimeout, SchedulerLost, WorkerLost, live_workers, one_line
from distlda.dask.replicas import ReplicaBehind

logger = logging.getLogger(__name__)

__all__ = ["SchedulerCalls", "POLL"]

POLL = 1.0
"""Seconds between two looks at the scheduler's state while tasks run."""
PING_TIMEOUT = 5.0
"""Seconds the scheduler has to answer a ping after a transfer failed, before it is taken for lost."""


class SchedulerCalls:
    """The client's side of the cluster: its ``client``, the scheduler's ``address``, the ``stall_timeout``, the
    workers the current tasks were cut for, and what was lost (set once the scheduler is gone)."""

    client: Any
    address: str
    stall_timeout: float
    stats: TrainingStats
    _workers: list[str]
    _lost: str | None

    def _guard(self, call: Callable[[], Any]) -> Any:
        """Make a call to the scheduler. A lost connection to it becomes :class:`SchedulerLost`, naming it; a
        connection error while the scheduler answers (a worker died under the call) is tried again once the
        scheduler has noticed, for up to ``stall_timeout`` seconds."""
        deadline = time.monotonic() + self.stall_timeout
        while True:
            if self._lost is not None:
                raise SchedulerLost(self._lost)
            try:
                return call()
            except DaskClusterError:
                raise
            except (OSError, TimeoutError) as exc:
                if getattr(self.client, "status", None) != "running" or time.monotonic() > deadline:
                    self._lose(f"{type(exc).__name__}: {exc}")
                logger.info("a Dask call failed while the scheduler answers (a worker lost?): %s; trying again", exc)
                time.sleep(POLL / 4)  # the scheduler removes a dead worker within a heartbeat
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # futures cancelled by the lost connection are a BaseException
                if getattr(self.client, "status", "running") != "running":
                    self._lose(f"{type(exc).__name__}: {exc}")
                raise

    def _taken_from(self, gathering: tuple[list[int], Any], results: dict[int, Any], what: str) -> bool:
        """Wait a poll for the transfer ``gathering``; whether it is over (its results put in ``results``, or failed
        in a way the next look handles)."""
        done, transfer = gathering
        try:
            results.update(zip(done, transfer.result(timeout=POLL)))
            return True
        except (TimeoutError, concurrent.futures.TimeoutError):  # (one class from Python 3.11 on)
            return False  # still moving (or a result held by a worker that just died is computed again)
        except OSError as exc:  # a worker holding results died, or the scheduler did not answer where they are:
            # gone (a gather tried again would retry the connection for Dask's whole connect timeout, 30 s) unless it
            # answers a ping within seconds
            if getattr(self.client, "status", None) != "running" or not self._scheduler_answers():
                self._lose(one_line(exc))
            logger.info("gathering %s failed (%s); looking again", what, exc)
            return True
        except ReplicaBehind as exc:  # its worker was replaced unseen: recovered as a lost worker
            raise WorkerLost(f"a Dask worker lost its replica during {what}: {exc}") from None
        except CancelledError as exc:
            self._lose(one_line(exc))
            raise  # (_lose raises)

    def _scheduler_answers(self) -> bool:
        """Whether the scheduler is there: False when a ping fails to connect, True when it answers or is only slow
        (:data:`PING_TIMEOUT` seconds)."""
        ping = asyncio.wait_for(self.client.scheduler.identity(), PING_TIMEOUT)
        try:
            asyncio.run_coroutine_threadsafe(ping, self.client.loop.asyncio_loop).result(PING_TIMEOUT + 1.0)
            return True
        except (TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError):
            # busy, or gone while Dask's connect still retries (for its connect timeout, 30 s: a loaded client may
            # not have seen the connection drop yet): a port that refuses a plain connection tells at once
            return self._port_open()
        except OSError as exc:
            logger.info("the Dask scheduler at %s does not answer: %s", self.address, one_line(exc))
            return False

    def _port_open(self) -> bool:
        """Whether the scheduler's TCP port takes a connection (True also when that cannot be told: not TCP, or no
        answer within :data:`PING_TIMEOUT`)."""
        where = urlsplit(self.address)
        if where.scheme not in ("tcp", "tls") or where.hostname is None or where.port is None:
            return True
        try:
            socket.create_connection((where.hostname, where.port), timeout=PING_TIMEOUT).close()
            return True
        except ConnectionRefusedError as exc:
            logger.info("the Dask scheduler at %s refuses connections: %s", self.address, exc)
            return False
        except OSError:
            return True

    def _lose(self, why: str) -> None:
        self._lost = (f"lost the Dask scheduler at {self.address} ({why}); the model keeps every completed "
                      "M-step: start the scheduler again and call resume() or update()")
        raise SchedulerLost(self._lost)

    def _results(self, futures: list[Any], what: str) -> list[Any]:
        """Wait for ``futures`` and take their results; give up when the scheduler is gone, or has had no worker
        for ``stall_timeout`` seconds; :class:`WorkerLost` when a worker the tasks were cut for left (a result
        held by it would otherwise be waited for forever: its task may run nowhere else)."""
        from distributed import wait

        started = seen = time.monotonic()  # seen: when the scheduler last had a worker
        results: dict[int, Any] = {}
        gathering: tuple[list[int], Any] | None = None  # the results being taken, and the transfer's future
        try:
            while True:
                running = [f for i, f in enumerate(futures)
                           if i not in results and f.status not in ("finished", "error")]
                try:
                    if running and gathering is None:
                        with self.client.as_current():  # wait() takes the default client: the user's may not be it
                            wait(running, timeout=POLL)
                except TimeoutError:
                    pass
                except CancelledError as exc:  # the client lost the scheduler while waiting
                    self._lose(one_line(exc))
                if any(f.status == "cancelled" for f in futures) or getattr(self.client, "status", None) != "running":
                    self._lose(f"the client is {self.client.status} and the tasks of {what} were cancelled")
                done = [i for i, future in enumerate(futures)
                        if i not in results and future.status in ("finished", "error")]
                if done and gathering is None:
                    # in one call, from the workers themselves (not through the scheduler); it goes on while this loop
                    # looks at the cluster between waits: on a slow link a group's γ takes longer than a poll, and a
                    # transfer cut at each poll would never end
                    gathering = (done, asyncio.run_coroutine_threadsafe(
                        self.client._gather([futures[i] for i in done], direct=True), self.client.loop.asyncio_loop))
                if gathering is not None and self._taken_from(gathering, results, what):
                    gathering = None
                if len(results) == len(futures):
                    self.stats.wait_seconds += time.monotonic() - started
                    return [results[i] for i in range(len(futures))]
                # a batch may take long on a big corpus: only a cluster without workers is a stall
                alive = self._guard(lambda: live_workers(self.client))
                if any(worker not in alive for worker in self._workers):
                    raise WorkerLost(f"Dask workers {sorted(set(self._workers) - set(alive))} left during {what}")
                if alive:
                    seen = time.monotonic()
                elif time.monotonic() - seen > self.stall_timeout:
                    raise DaskTimeout(f"the Dask scheduler at {self.address} has had no worker for "
                                      f"{self.stall_timeout:.0f}s ({what}); the model keeps every completed M-step: "
                                      "start workers and call resume() or update()")
        finally:  # a transfer left running would move the same γ again beside the next one
            if gathering is not None:
                gathering[1].cancel()
