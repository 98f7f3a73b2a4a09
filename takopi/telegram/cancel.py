"""Cancellation: ``/cancel`` (a reply to a progress message) and the inline cancel button.

A running task gets ``cancel_requested`` (the engine's process group is then terminated); a
queued job is dropped from its thread's queue and its placeholder marked `` `cancelled` ``.
"""

from __future__ import annotations

from takopi.logging import get_logger
from takopi.progress import ProgressTracker
from takopi.scheduler import ThreadJob
from takopi.transport import MessageRef

from .background import Background
from .bridge import CANCEL_CALLBACK_DATA
from .client import BotClient
from .replies import Replier
from .runs import RunLauncher
from .types import TelegramCallbackQuery, TelegramIncomingMessage

CANCEL_NO_REPLY = "reply to the progress message to cancel."
CANCEL_NOTHING = "nothing is currently running for that message."
CANCEL_RUNNING = "cancelling..."
CANCEL_DROPPED = "dropped from queue."

log = get_logger(__name__)


class Canceller:
    """Cancels runs and queued jobs behind progress messages."""

    def __init__(
        self, *, runs: RunLauncher, replier: Replier, background: Background, bot: BotClient
    ) -> None:
        self.runs = runs
        self.replier = replier
        self.background = background
        self.bot = bot

    def cancel(self, chat_id: int, progress_message_id: int) -> str:
        """Cancel the run or queued job behind a progress message; returns the answer text."""
        ref = MessageRef(channel_id=chat_id, message_id=progress_message_id)
        task = self.runs.running_tasks.get(ref)
        if task is not None:
            task.cancel_requested.set()
            log.info("telegram.cancel.requested", chat_id=chat_id, message_id=progress_message_id)
            return CANCEL_RUNNING
        job = self.runs.scheduler.cancel_queued(chat_id, progress_message_id)
        if job is not None:
            self.background.spawn(self._mark_job_cancelled, job)
            return CANCEL_DROPPED
        return CANCEL_NOTHING

    async def _mark_job_cancelled(self, job: ThreadJob) -> None:
        try:
            await self._edit_cancelled(job)
        finally:
            self.runs.release_queued(job.chat_id, job.user_msg_id)

    async def _edit_cancelled(self, job: ThreadJob) -> None:
        if job.progress_ref is None:
            return
        tracker = ProgressTracker(job.resume_token.engine)
        tracker.set_resume(job.resume_token)
        state = tracker.snapshot(
            resume_formatter=self.runs.resume_formatter(job.resume_token, show=True),
            context_line=self.runs.context_line(job.context),
        )
        rendered = self.runs.presenter.render_progress(state, elapsed_s=0.0, label="`cancelled`")
        await self.runs.transport.edit(ref=job.progress_ref, message=rendered, wait=True)

    def handle_command(self, msg: TelegramIncomingMessage) -> None:
        """``/cancel``: must reply to a progress message."""
        if msg.reply_to_message_id is None:
            self.background.spawn(self.replier.reply, msg, CANCEL_NO_REPLY)
            return
        answer = self.cancel(msg.chat_id, msg.reply_to_message_id)
        if answer == CANCEL_NOTHING:
            self.background.spawn(self.replier.reply, msg, CANCEL_NOTHING)

    async def handle_button(self, query: TelegramCallbackQuery) -> None:
        """The inline cancel button (any other callback gets a bare answer)."""
        if query.data != CANCEL_CALLBACK_DATA or query.chat_id is None or query.message_id is None:
            await self.bot.answer_callback_query(query.callback_query_id)
            return
        answer = self.cancel(query.chat_id, query.message_id)
        await self.bot.answer_callback_query(query.callback_query_id, text=answer)


__all__ = [
    "CANCEL_DROPPED",
    "CANCEL_NOTHING",
    "CANCEL_NO_REPLY",
    "CANCEL_RUNNING",
    "Canceller",
]
