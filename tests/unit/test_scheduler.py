"""ThreadScheduler: FIFO per thread, parallel across threads, busy threads, cancellation."""

from __future__ import annotations

import asyncio

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from takopi.model import ResumeToken
from takopi.scheduler import ThreadJob, ThreadScheduler
from takopi.transport import MessageRef

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


class Recorder:
    """A run_job that records start/end and blocks each job until its gate opens."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.gates: dict[str, anyio.Event] = {}

    def gate(self, text: str) -> anyio.Event:
        return self.gates.setdefault(text, anyio.Event())

    async def __call__(self, job: ThreadJob) -> None:
        self.log.append(("start", job.text))
        await self.gate(job.text).wait()
        self.log.append(("end", job.text))


def job(text: str, token: str, *, progress_id: int | None = None) -> ThreadJob:
    return ThreadJob(
        chat_id=1,
        user_msg_id=len(text),
        text=text,
        resume_token=ResumeToken("codex", token),
        progress_ref=MessageRef(1, progress_id) if progress_id is not None else None,
    )


async def test_fifo_per_thread_and_parallel_across_threads() -> None:
    rec = Recorder()
    async with anyio.create_task_group() as tg:
        sched = ThreadScheduler(task_group=tg, run_job=rec)
        for text in ("a1", "a2", "a3"):
            await sched.enqueue(job(text, "A"))
        await sched.enqueue(job("b1", "B"))
        await wait_all_tasks_blocked()
        # One job per thread runs; thread B is not blocked by thread A.
        assert sorted(rec.log) == [("start", "a1"), ("start", "b1")]
        assert [j.text for j in sched.pending(ResumeToken("codex", "A"))] == ["a2", "a3"]
        rec.gate("a2").set()  # opening a later gate must not let it overtake a1
        await wait_all_tasks_blocked()
        assert ("start", "a2") not in rec.log
        rec.gate("a1").set()
        await wait_all_tasks_blocked()
        rec.gate("a3").set()
        rec.gate("b1").set()
    a_events = [entry for entry in rec.log if entry[1].startswith("a")]
    assert a_events == [
        ("start", "a1"),
        ("end", "a1"),
        ("start", "a2"),
        ("end", "a2"),
        ("start", "a3"),
        ("end", "a3"),
    ]


async def test_worker_exists_only_while_jobs_are_queued() -> None:
    rec = Recorder()
    async with anyio.create_task_group() as tg:
        sched = ThreadScheduler(task_group=tg, run_job=rec)
        rec.gate("x").set()
        await sched.enqueue(job("x", "A"))
        await wait_all_tasks_blocked()
        assert not sched.is_busy(ResumeToken("codex", "A"))
        assert sched.pending() == []
        # Queued jobs are data, not tasks: 200 queued jobs add no tasks.
        blocker = job("hold", "B")
        await sched.enqueue(blocker)
        await wait_all_tasks_blocked()
        before = len(asyncio.all_tasks())
        for i in range(200):
            await sched.enqueue(job(f"q{i}", "B"))
        await wait_all_tasks_blocked()
        assert len(asyncio.all_tasks()) == before
        assert len(sched.pending(ResumeToken("codex", "B"))) == 200
        for i in range(200):
            rec.gate(f"q{i}").set()
        rec.gate("hold").set()
    assert [t for kind, t in rec.log if kind == "end"][-1] == "q199"


async def test_note_thread_known_holds_queued_jobs_until_done() -> None:
    rec = Recorder()
    token = ResumeToken("codex", "new")
    done = anyio.Event()
    async with anyio.create_task_group() as tg:
        sched = ThreadScheduler(task_group=tg, run_job=rec)
        await sched.note_thread_known(token, done)
        assert sched.is_busy(token)
        rec.gate("follow-up").set()
        await sched.enqueue_resume(1, 10, "follow-up", token)
        await wait_all_tasks_blocked()
        assert rec.log == []  # the brand-new run still owns the thread
        done.set()
    assert rec.log == [("start", "follow-up"), ("end", "follow-up")]


async def test_cancel_queued_removes_only_a_waiting_job() -> None:
    rec = Recorder()
    async with anyio.create_task_group() as tg:
        sched = ThreadScheduler(task_group=tg, run_job=rec)
        await sched.enqueue(job("running", "A", progress_id=100))
        await sched.enqueue(job("queued", "A", progress_id=101))
        await sched.enqueue(job("kept", "A", progress_id=102))
        await wait_all_tasks_blocked()
        assert sched.cancel_queued(1, 100) is None  # already running
        assert sched.cancel_queued(2, 101) is None  # other chat
        removed = sched.cancel_queued(1, 101)
        assert removed is not None and removed.text == "queued"
        assert sched.cancel_queued(1, 101) is None
        for text in ("running", "kept"):
            rec.gate(text).set()
    assert [t for kind, t in rec.log if kind == "start"] == ["running", "kept"]


async def test_job_exceptions_are_logged_not_raised() -> None:
    ran: list[str] = []

    async def run_job(j: ThreadJob) -> None:
        ran.append(j.text)
        if j.text == "bad":
            raise RuntimeError("job blew up")

    async with anyio.create_task_group() as tg:
        sched = ThreadScheduler(task_group=tg, run_job=run_job)
        await sched.enqueue(job("bad", "A"))
        await sched.enqueue(job("good", "A"))
    # The task group did not see the error and the next job still ran.
    assert ran == ["bad", "good"]


def test_thread_key_and_job_defaults() -> None:
    assert ThreadScheduler.thread_key(ResumeToken("claude", "abc")) == "claude:abc"
    j = ThreadJob(chat_id=1, user_msg_id=2, text="t", resume_token=ResumeToken("pi", "x"))
    assert (j.context, j.thread_id, j.progress_ref) == (None, None, None)
