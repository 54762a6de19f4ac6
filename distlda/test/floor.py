"""The floor of the barrier between mini-batches: the least any cluster that keeps a local run's model must do.

With the model bitwise that of a local run, each mini-batch's E-step starts from the M-step of the one before. So,
per mini-batch, every worker must fit its chunks, send the rows of its partial statistics to the workers that own
them, and receive the new exp(E[log β]) of every row before it fits its next chunk. :func:`run_worker` does exactly
that and nothing else: W processes, each the owner of a fixed range of word blocks, connected to each other by
plain TCP (a full mesh), with

1. the E-step of the worker's chunks of the batch (chunks ``j`` with ``j % W == index``) and their partials;
2. a reduce-scatter: each peer gets the partial rows of its range, and the owner adds its range's rows in chunk
   order (:func:`distlda.core.estep.sum_partials`);
3. the M-step of the owner's blocks only (:func:`distlda.kernels.mstep.blend_blocks`), an all-gather of the
   blocks' topic sums (K floats per block), and the owner's rows of exp(E[log β])
   (:func:`~distlda.kernels.mstep.expectations_blocks`);
4. an all-gather of those rows.

No dispatcher, no client, no calls, no replica of the statistics (each worker keeps only its own range up to
date), no recovery and no checks: the period of this loop is a lower bound of the period of any such design on the
same hosts, with its kernels. The M-step is applied by ranges with the local run's block order, so the loop gives
the local run's statistics, bitwise — which ``bench/floor.py`` (on every run) and ``tests/test_floor.py`` check
with the statistics worker 0 saves, so the floor is known to do the whole work. ``bench/floor.py`` runs it on
scaled-down hosts.

The exchanges run on one thread with a selector over non-blocking sockets, whose reads wake the thread once up to
``LOWAT`` bytes wait (as the cluster's bulk channel does); ``DISTLDA_FLOOR_THREADS=1`` uses a thread per connection
and way instead (10% slower at 8 hosts of 0.2 cores: docs/scaling.md), ``DISTLDA_FLOOR_LOWAT=0`` wakes per packet.

Run a worker as ``python -m distlda.test.floor CONFIG.json``; the configuration's keys are those of
:func:`run_worker`. Only the dense M-step is modelled.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import socket
import struct
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import msgpack
import numpy as np

from distlda.cluster.bulk import LOW_WATER
from distlda.core.estep import ChunkPartial, chunk_partial, fit_documents, sum_partials
from distlda.core.mstep import eta_wm
from distlda.core.training import TrainingRun
from distlda.corpora.binary import BinaryCorpus
from distlda.datasets.synthetic import synthetic_id2word
from distlda.kernels.mstep import WORD_BLOCK, blend_blocks, expectations_blocks, sum_block_sums, word_blocks
from distlda.kernels.parallel import kernel_threads

logger = logging.getLogger(__name__)

__all__ = ["Mesh", "block_ranges", "run_worker", "main"]

_LENGTH = struct.Struct("<Q")
SELECT = os.environ.get("DISTLDA_FLOOR_THREADS") != "1"
"""Exchange on one thread with a selector (default), or with a thread per connection and way."""
LOWAT = int(os.environ.get("DISTLDA_FLOOR_LOWAT", LOW_WATER))
"""``SO_RCVLOWAT`` of a selector's reads (bytes; 0: wake per packet), as the cluster's bulk channel sets it."""


def block_ranges(num_terms: int, workers: int) -> list[tuple[int, int]]:
    """The word blocks each of ``workers`` owns: ``(first block, end block)``, consecutive, as even as can be."""
    blocks = word_blocks(num_terms)
    cuts = [round(i * blocks / workers) for i in range(workers + 1)]
    return [(cuts[i], cuts[i + 1]) for i in range(workers)]


def _words(blocks: tuple[int, int], num_terms: int) -> tuple[int, int]:
    return blocks[0] * WORD_BLOCK, min(num_terms, blocks[1] * WORD_BLOCK)


class Mesh:
    """Every worker connected to every other by two TCP connections (one each way), and exchanges over them.

    Parameters
    ----------
    index : int
        This worker's place in ``addresses``.
    addresses : sequence of (host, port)
        Where each worker listens.
    timeout : float
        Seconds to wait for the peers to listen and connect.
    """

    def __init__(self, index: int, addresses: Sequence[tuple[str, int]], listener: socket.socket | None = None,
                 timeout: float = 600.0) -> None:
        self.index, self.size = index, len(addresses)
        self.peers = [j for j in range(self.size) if j != index]
        self.out: dict[int, socket.socket] = {}
        self.into: dict[int, socket.socket] = {}
        self.pool = ThreadPoolExecutor(max_workers=max(1, 2 * len(self.peers)))
        try:
            listener = listener or socket.create_server(tuple(addresses[index]), backlog=self.size)
            listener.settimeout(timeout)
            with listener:
                accepting = self.pool.submit(self._accept, listener)
                for j in self.peers:
                    self.out[j] = self._connect(tuple(addresses[j]), timeout)
                    self.out[j].sendall(_LENGTH.pack(index))
                accepting.result()
        except BaseException:
            self.close()
            raise
        for sock in [*self.out.values(), *self.into.values()]:
            sock.setblocking(not SELECT)  # a selector's sends must not wait for the whole message

    def _accept(self, listener: socket.socket) -> None:
        while len(self.into) < len(self.peers):
            conn, _ = listener.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.into[_LENGTH.unpack(_read(conn, _LENGTH.size))[0]] = conn

    @staticmethod
    def _connect(address: tuple[str, int], timeout: float) -> socket.socket:
        deadline = time.monotonic() + timeout
        while True:
            try:
                sock = socket.create_connection(address, timeout=timeout)
                if sock.getsockname() == sock.getpeername():  # a TCP self-connection on a port no one listens on yet
                    sock.close()
                    raise OSError("connected to itself")
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return sock
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def exchange(self, outgoing: dict[int, list[np.ndarray]]) -> dict[int, list[np.ndarray]]:
        """Send each peer its arrays and receive every peer's, all at once; returns ``{peer: arrays}``."""
        if SELECT:
            return self._select(outgoing)
        sends = [self.pool.submit(_send, self.out[j], outgoing[j]) for j in self.peers]
        receives = {j: self.pool.submit(_receive, self.into[j]) for j in self.peers}
        for sent in sends:
            sent.result()
        return {j: got.result() for j, got in receives.items()}

    def _select(self, outgoing: dict[int, list[np.ndarray]]) -> dict[int, list[np.ndarray]]:
        """:meth:`exchange` on this thread alone: every socket non-blocking, one selector over all of them."""
        selector = selectors.DefaultSelector()
        pending: dict[socket.socket, list[memoryview]] = {}
        for j in self.peers:
            pending[self.out[j]] = _frame(outgoing[j])
            selector.register(self.out[j], selectors.EVENT_WRITE)
        incoming = {self.into[j]: _Incoming() for j in self.peers}
        for sock in incoming:
            selector.register(sock, selectors.EVENT_READ)
        try:
            self._drive(selector, pending, incoming)
        finally:
            selector.close()
        return {j: incoming[self.into[j]].arrays for j in self.peers}

    @staticmethod
    def _drive(selector: selectors.BaseSelector, pending: dict[socket.socket, list[memoryview]],
               incoming: dict[socket.socket, "_Incoming"]) -> None:
        """Send every pending view and receive every incoming message, as the sockets become ready."""
        waiting = len(pending) + len(incoming)
        while waiting:
            for key, _ in selector.select():
                sock = key.fileobj
                if sock in pending:
                    views = pending[sock]
                    try:
                        views[0] = views[0][sock.send(views[0]):]
                    except BlockingIOError:
                        continue
                    while views and not len(views[0]):
                        views.pop(0)
                    done = not views
                else:
                    done = incoming[sock].read(sock)
                if done:
                    selector.unregister(sock)
                    waiting -= 1

    def close(self) -> None:
        """Close every connection and stop the threads."""
        for sock in [*self.out.values(), *self.into.values()]:
            sock.close()
        self.pool.shutdown(wait=False, cancel_futures=True)


class _Incoming:
    """One message being received without blocking: its length, its header, then its arrays."""

    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []
        self.buffer = bytearray(_LENGTH.size)
        self.views = [memoryview(self.buffer)]
        self.stage = 0

    def read(self, sock: socket.socket) -> bool:
        """Take what ``sock`` has; True once the whole message is in."""
        try:
            n = sock.recv_into(self.views[0])
        except BlockingIOError:
            return False
        if not n:
            raise ConnectionError("a peer closed its connection mid-message")
        self.views[0] = self.views[0][n:]
        while self.views and not len(self.views[0]):
            self.views.pop(0)
            if self.stage == 0:  # the length is in: the header next
                self.buffer = bytearray(_LENGTH.unpack(self.buffer)[0])
                self.views, self.stage = [memoryview(self.buffer)], 1
            elif self.stage == 1:  # the header is in: the arrays next
                self.arrays, self.views = _arrays_for(self.buffer)
                self.stage = 2
        done = self.stage == 2 and not self.views
        if LOWAT:  # wake this thread again only when the rest of this piece, or a good part of it, is in
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, max(1, min(LOWAT, len(self.views[0]))) if
                            self.views else 1)
        return done


def _read(sock: socket.socket, size: int, into: memoryview | None = None) -> bytes:
    buf = memoryview(bytearray(size)) if into is None else into
    got = 0
    while got < size:
        n = sock.recv_into(buf[got:], size - got)
        if not n:
            raise ConnectionError("a peer closed its connection mid-message")
        got += n
    return bytes(buf) if into is None else b""


def _frame(arrays: list[np.ndarray]) -> list[memoryview]:
    """A message as the views to send: its header's length, its header (each array's dtype and shape), the arrays."""
    arrays = [np.ascontiguousarray(a) for a in arrays]
    header = msgpack.packb([[a.dtype.str, list(a.shape)] for a in arrays])
    return [memoryview(_LENGTH.pack(len(header)) + header), *(memoryview(a).cast("B") for a in arrays if a.nbytes)]


def _arrays_for(header: bytes | bytearray) -> tuple[list[np.ndarray], list[memoryview]]:
    """The (empty) arrays a message's header announces, and the views to receive their bytes into."""
    arrays = [np.empty(shape, dtype=np.dtype(dtype)) for dtype, shape in msgpack.unpackb(header)]
    return arrays, [memoryview(a).cast("B") for a in arrays if a.nbytes]


def _send(sock: socket.socket, arrays: list[np.ndarray]) -> None:
    for view in _frame(arrays):
        sock.sendall(view)


def _receive(sock: socket.socket) -> list[np.ndarray]:
    arrays, views = _arrays_for(_read(sock, _LENGTH.unpack(_read(sock, _LENGTH.size))[0]))
    for view in views:
        _read(sock, len(view), view)
    return arrays


class _Worker:
    """One worker's state: the corpus, its range, the model's arrays (only its range's statistics kept current)."""

    def __init__(self, config: dict[str, Any]) -> None:
        from distlda.models import LdaModel  # the starting model and the M-steps' plans, as a local run makes them

        self.corpus = BinaryCorpus(config["corpus"])
        self.index, self.size = int(config["index"]), len(config["addresses"])
        params = dict(config["params"])
        self.model = LdaModel(id2word=synthetic_id2word(self.corpus.num_terms), **params)
        model = self.model
        self.sstats = np.array(model.state.sstats_wm, order="C")
        self.eeb = np.array(model.expElogbeta_wm, order="C")
        self.dtype = self.sstats.dtype
        self.eta = eta_wm(model.state.eta, self.dtype)
        self.alpha = np.require(model.alpha, self.dtype, "CAW")
        self.raw = np.zeros_like(self.sstats)
        self.ranges = block_ranges(self.corpus.num_terms, self.size)
        self.blocks = self.ranges[self.index]
        self.words = _words(self.blocks, self.corpus.num_terms)
        self.block_sums = np.zeros((word_blocks(self.corpus.num_terms), self.sstats.shape[1]), dtype=np.float64)
        self.run = TrainingRun(lencorpus=self.corpus.num_docs, chunksize=int(params["chunksize"]), decay=model.decay,
                               offset=model.offset, passes=1, update_every=int(params["update_every"]), eval_every=0,
                               iterations=model.iterations, gamma_threshold=model.gamma_threshold)
        model.begin_training(self.run)

    def batches(self) -> list[list[int]]:
        """The chunk numbers of each mini-batch of the one pass."""
        run = self.run
        chunks = -(-run.lencorpus // run.chunksize)
        return [list(range(c, min(chunks, c + run.update_every))) for c in range(0, chunks, run.update_every)]

    def read(self, chunk_no: int) -> Any:
        size = self.run.chunksize
        return self.corpus.read_range(chunk_no * size, min(self.run.lencorpus, (chunk_no + 1) * size))

    def warm(self) -> None:
        """Load every kernel the timed pass runs (from numba's cache), on the first chunk and on scratch copies of the
        first block, so that no worker loads one inside the timed part."""
        chunk, rows = self.read(0), slice(0, min(WORD_BLOCK, self.corpus.num_terms))
        gamma, _ = fit_documents(chunk, self.eeb, self.alpha, self.model._seed, 0, self.run.iterations,
                                 self.run.gamma_threshold)
        lo, hi = self.words
        sum_partials([chunk_partial(chunk, gamma, self.eeb).rows_between(lo, hi)], lo, hi, self.sstats.shape[1],
                     self.dtype)
        sstats, eeb, eta = self.sstats[rows].copy(), self.eeb[rows].copy(), self.eta[rows].copy()
        sums = np.zeros((1, self.sstats.shape[1]))
        blend_blocks(sstats, np.zeros_like(sstats), eeb, 1.0, 0.0, eta, sums, 0, 1)
        expectations_blocks(sstats, eta, sum_block_sums(sums), eeb, 0, 1)

    def fit(self, chunk_nos: list[int]) -> dict[int, ChunkPartial]:
        """Phase 1: the E-step of this worker's chunks of a batch, and each chunk's partial statistics."""
        partials = {}
        for c in chunk_nos[self.index::self.size]:
            chunk = self.read(c)
            gamma, _ = fit_documents(chunk, self.eeb, self.alpha, self.model._seed, 0, self.run.iterations,
                                     self.run.gamma_threshold)
            partials[c] = chunk_partial(chunk, gamma, self.eeb)
        return partials

    def reduce(self, partials: dict[int, ChunkPartial], mesh: Mesh | None) -> None:
        """Phase 2: the reduce-scatter; this worker's range of the batch's raw statistics, in chunk order."""
        lo, hi = self.words
        mine = {c: p.rows_between(lo, hi) for c, p in partials.items()}
        if mesh is not None:
            outgoing = {}
            for j in mesh.peers:
                rows = [p.rows_between(*_words(self.ranges[j], self.corpus.num_terms)) for p in partials.values()]
                outgoing[j] = [np.array(list(partials), dtype=np.int64), *(a for r in rows for a in (r.words, r.raw))]
            for arrays in mesh.exchange(outgoing).values():
                for k, c in enumerate(arrays[0]):
                    mine[int(c)] = ChunkPartial(arrays[1 + 2 * k], arrays[2 + 2 * k])
        summed = sum_partials([mine[c] for c in sorted(mine)], lo, hi, self.sstats.shape[1], self.dtype)
        self.raw[lo:hi] = 0
        self.raw[summed.words] = summed.raw

    def mstep(self, plan: Any, mesh: Mesh | None) -> None:
        """Phase 3: the M-step of this worker's blocks, with the topic sums of all blocks."""
        (blo, bhi), sums = self.blocks, self.block_sums
        blend_blocks(self.sstats, self.raw, self.eeb, plan.a, plan.b, self.eta, sums, blo, bhi)
        if mesh is not None:
            for j, arrays in mesh.exchange({j: [sums[blo:bhi]] for j in mesh.peers}).items():
                sums[slice(*self.ranges[j])] = arrays[0]
        expectations_blocks(self.sstats, self.eta, sum_block_sums(sums), self.eeb, blo, bhi)

    def gather(self, array: np.ndarray, mesh: Mesh | None, to: int | None = None) -> None:
        """Phase 4 (``to`` None): every worker gets every range's rows of ``array``; else only worker ``to``."""
        if mesh is None:
            return
        lo, hi = self.words
        mine = [array[lo:hi]] if to is None or to != self.index else []
        for j, arrays in mesh.exchange({j: mine if to in (None, j) else [] for j in mesh.peers}).items():
            if arrays:
                array[slice(*_words(self.ranges[j], self.corpus.num_terms))] = arrays[0]


def run_worker(config: dict[str, Any]) -> dict[str, Any]:
    """Train one pass as worker ``config["index"]`` of the floor's mesh and return its timings.

    ``config``: ``corpus`` (a binary corpus every worker reads), ``index``, ``addresses`` (``[host, port]`` of
    every worker), ``params`` (``LdaModel`` keywords: ``chunksize``, ``update_every``, ``num_topics``,
    ``random_state``, the priors...; only the dense M-step), optionally ``listen_fd`` (a listening socket at this
    worker's address, inherited from the caller), ``save`` (worker 0 writes the final statistics there, K × V,
    after the timed part), ``batches`` (stop after that many mini-batches) and ``threads`` (the kernels' threads,
    default 1).
    """
    with kernel_threads(int(config.get("threads", 1))):  # one thread, as each worker of the cluster it stands for
        return _run(config)


def _run(config: dict[str, Any]) -> dict[str, Any]:
    worker = _Worker(config)
    fd = config.get("listen_fd")
    listener = socket.socket(fileno=int(fd)) if fd is not None else None
    mesh = Mesh(worker.index, [tuple(a) for a in config["addresses"]], listener) if worker.size > 1 else None
    try:
        worker.warm()
        batches = worker.batches()[:config.get("batches")]
        if mesh is not None:
            mesh.exchange({j: [] for j in mesh.peers})  # everyone starts together
        started = time.perf_counter()
        phases, cpu = _timed_pass(worker, mesh, batches)
        seconds = time.perf_counter() - started
        if config.get("save"):
            worker.gather(worker.sstats, mesh, to=0)
            if worker.index == 0:
                np.save(config["save"], worker.sstats.T)
    finally:
        if mesh is not None:
            mesh.close()
    return {"index": worker.index, "workers": worker.size, "seconds": seconds, "batches": len(batches),
            "phases": phases, "cpu": cpu}


def _timed_pass(worker: _Worker, mesh: Mesh | None,
                batches: list[list[int]]) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """The mini-batches, one after the other; the wall and CPU seconds of each phase of each."""
    phases: dict[str, list[float]] = {"fit": [], "reduce": [], "mstep": [], "gather": []}
    cpu: dict[str, list[float]] = {name: [] for name in phases}
    size, total = worker.run.chunksize, worker.run.lencorpus
    for chunk_nos in batches:
        t0, c0 = time.perf_counter(), time.process_time()
        docs = min(total, (chunk_nos[-1] + 1) * size) - chunk_nos[0] * size
        plan = worker.model.plan_mstep(docs, float((worker.run.offset + worker.model.num_updates / size)
                                                   ** (-worker.run.decay)))
        partials = worker.fit(chunk_nos)
        t1, c1 = time.perf_counter(), time.process_time()
        worker.reduce(partials, mesh)
        t2, c2 = time.perf_counter(), time.process_time()
        worker.mstep(plan, mesh)
        t3, c3 = time.perf_counter(), time.process_time()
        worker.gather(worker.eeb, mesh)
        worker.model.num_updates += docs
        t4, c4 = time.perf_counter(), time.process_time()
        for name, a, b, ca, cb in zip(phases, (t0, t1, t2, t3), (t1, t2, t3, t4), (c0, c1, c2, c3), (c1, c2, c3, c4)):
            phases[name].append(b - a)
            cpu[name].append(cb - ca)
    return phases, cpu


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m distlda.test.floor CONFIG.json``: run one worker; its result goes to ``config["out"]``."""
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 1:
        print("usage: python -m distlda.test.floor CONFIG.json", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = json.loads(Path(args[0]).read_text())
    result = run_worker(config)
    Path(config["out"]).write_text(json.dumps(result))
    logger.info("worker %d: %d mini-batches in %.2f s", result["index"], result["batches"], result["seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
