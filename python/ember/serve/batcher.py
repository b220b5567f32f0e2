"""Batching across requests inside one replica: an asyncio queue of token sequences, formed
into batches bounded by a token budget and a wait time, run one at a time on a worker thread.

Why not Ray Serve's @serve.batch: it batches *calls* in arrival order, while an embedding
request carries 1 to thousands of texts of very unequal length. Here the unit is the sequence:
a request's sequences enter the queue together, the batch cost is what the forward actually
holds (rows x longest row, the padded workspace), and each window of waiting sequences is
sorted by length before it is cut into batches, so batches hold sequences of similar length.
(@serve.batch's batch_size_fn only sums item sizes, re-sums the whole batch for every item
added, and sends an item that does not fit to the back of the queue.) The queue also runs
without Ray, so the tests check it directly.

Order and fairness: windows are taken first-in first-out, a window being the oldest sequences
whose tokens sum to at most max_batch_tokens, so a request waits for at most the windows
ahead of it; sorting happens only inside a window. A window is taken when it is full or when
its oldest sequence has waited max_wait_s.

Results do not depend on how sequences were batched where the backend computes each row
independently of the others (the CPU backend: see engine.py); the tests check it."""
import asyncio
import collections
import time


class _Job:
    __slots__ = ("future", "rows", "left")

    def __init__(self, future, n):
        self.future = future
        self.rows = [None] * n
        self.left = n


class _Item:
    __slots__ = ("job", "row", "seq", "key", "n", "t")

    def __init__(self, job, row, seq, key, t):
        self.job, self.row, self.seq, self.key, self.n, self.t = job, row, seq, key, len(seq), t


def plan(lengths, keys, max_batch_tokens):
    """Cut a window into batches: indices sorted by (key, longest first), split where the key
    changes or where rows x longest row would exceed max_batch_tokens. Returns lists of
    indices; deterministic (ties keep arrival order)."""
    order = sorted(range(len(lengths)), key=lambda i: (keys[i], -lengths[i], i))
    batches, cur, longest = [], [], 0
    for i in order:
        if cur and (keys[i] != keys[cur[0]] or (len(cur) + 1) * max(longest, lengths[i])
                    > max_batch_tokens):
            batches.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, lengths[i])
    if cur:
        batches.append(cur)
    return batches


class Batcher:
    """run(seqs, key) -> [n, H] array runs on `executor` (a one-thread pool: one forward at a
    time per model). on_batch(rows, tokens, padded_tokens, seconds) is called after each
    batch (metrics)."""

    def __init__(self, run, max_batch_tokens, max_wait_s, executor, on_batch=None):
        self._run = run
        self.max_batch_tokens = int(max_batch_tokens)
        self.max_wait_s = float(max_wait_s)
        self._executor = executor
        self._on_batch = on_batch
        self._queue = collections.deque()
        self._queued_tokens = 0
        self._wake = None
        self._task = None
        self.failures = 0  # consecutive batches that raised

    async def submit(self, seqs, key):
        """Queue one request's sequences (each at most max_batch_tokens long); returns their
        embeddings in order, or raises what the forward raised."""
        loop = asyncio.get_running_loop()
        self._start(loop)
        job = _Job(loop.create_future(), len(seqs))
        now = time.monotonic()
        for s in seqs:
            if len(s) > self.max_batch_tokens:
                raise ValueError("a sequence of %d tokens exceeds max_batch_tokens = %d"
                                 % (len(s), self.max_batch_tokens))
        for r, s in enumerate(seqs):
            self._queue.append(_Item(job, r, s, key, now))
            self._queued_tokens += len(s)
        self._wake.set()
        return await job.future

    def alive(self):
        """False once the batching task has stopped on an unexpected error."""
        return self._task is None or not self._task.done()

    def _start(self, loop):
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._loop())

    def _take_window(self):
        items, tokens = [], 0
        while self._queue:
            it = self._queue[0]
            if it.job.future.done():  # cancelled (client gone) or failed: drop its rows
                self._queue.popleft()
                self._queued_tokens -= it.n
                continue
            if items and tokens + it.n > self.max_batch_tokens:
                break
            self._queue.popleft()
            self._queued_tokens -= it.n
            items.append(it)
            tokens += it.n
        return items

    async def _loop(self):
        try:
            await self._serve()
        except BaseException as e:
            # a bug here must not leave requests waiting forever: fail them, and alive()
            # turns False so that the replica's health check reports it
            while self._queue:
                job = self._queue.popleft().job
                if not job.future.done():
                    job.future.set_exception(RuntimeError("the batching task stopped: %r" % e))
            raise

    async def _serve(self):
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            wait = self._queue[0].t + self.max_wait_s - time.monotonic()
            if wait > 0 and self._queued_tokens < self.max_batch_tokens:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except asyncio.TimeoutError:
                    pass
                continue
            window = self._take_window()
            if not window:
                continue
            for idx in plan([it.n for it in window], [it.key for it in window],
                            self.max_batch_tokens):
                await self._run_batch([window[i] for i in idx])

    async def _run_batch(self, items):
        items = [it for it in items if not it.job.future.done()]
        if not items:
            return
        seqs = [it.seq for it in items]
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        try:
            out = await loop.run_in_executor(self._executor, self._run, seqs, items[0].key)
        except Exception as e:  # noqa: BLE001 - the requests in this batch get the error
            self.failures += 1
            for it in items:
                if not it.job.future.done():
                    it.job.future.set_exception(e)
            return
        self.failures = 0
        dt = time.perf_counter() - t0
        for it, row in zip(items, out):
            job = it.job
            if job.future.done():
                continue
            job.rows[it.row] = row
            job.left -= 1
            if job.left == 0:
                job.future.set_result(job.rows)
        if self._on_batch is not None:
            n = sum(it.n for it in items)
            self._on_batch(len(items), n, len(items) * max(it.n for it in items), dt)
