"""The built-in Telegram transport (Bot API long polling), entry point
``takopi.telegram.backend:BACKEND``.

Modules, by job:

- ``client_api`` — raw Bot API over httpx (errors → ``TelegramRetryAfter`` /
  ``TelegramTransientError`` / ``TelegramApiError``); ``client`` — ``TelegramClient`` (reads
  direct, writes through the outbox); ``outbox`` — keyed, prioritised, per-chat paced writes;
- ``render`` — Markdown → text + entities, trim/split; ``bridge`` — ``TelegramPresenter``,
  ``TelegramTransport``, ``TelegramBridgeConfig``;
- ``parsing`` / ``types`` — updates → ``TelegramIncomingMessage`` / ``TelegramCallbackQuery``,
  de-duplication; ``polling`` — ``getUpdates`` long polling;
- ``loop`` — the chat loop (routing, runs, queueing, cancel, sessions); ``coalesce`` —
  forwarded-message coalescing; ``commands`` — slash-command parsing and the command menu;
  ``builtins`` — ``/agent``, ``/model``, ``/reasoning``, ``/trigger``, ``/ctx``; ``executor`` —
  ``ctx.executor`` for command plugins; ``deliveries`` — journaled outcomes at startup;
- ``state_store`` (``JsonStateStore[T]``), ``chat_sessions``, ``chat_prefs`` — state files;
- ``backend`` — the ``TransportBackend``; ``onboarding`` — token check and chat capture helpers
  for the CLI wizard; ``files`` — path-safety and safe-write helpers (other transports import
  them too);
- ``media`` wires the file and voice features: ``file_transfer`` — ``/file put|get``;
  ``uploads`` — auto-put of documents, photos, videos and albums; ``media_groups`` — the
  album buffer; ``attachments`` — a message's file and fetching it; ``voice`` — voice notes;
  ``transcription`` — the OpenAI-compatible speech-to-text client.

Not supported by this build (logged at startup when enabled): forum topics.
"""
