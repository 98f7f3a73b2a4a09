"""The built-in Telegram transport (Bot API long polling), entry point
``takopi.telegram.backend:BACKEND``.

Modules, by job:

- ``client_api`` — raw Bot API over httpx (errors → ``TelegramRetryAfter`` /
  ``TelegramTransientError`` / ``TelegramApiError``); ``client`` — ``TelegramClient`` (reads
  direct, writes through the outbox); ``outbox`` — keyed, prioritised writes; ``pacing`` — per-chat token buckets
  and the global cap;
- ``render`` — Markdown → text + entities, trim/split; ``bridge`` — ``TelegramPresenter``,
  ``TelegramTransport``, ``TelegramBridgeConfig``;
- ``parsing`` / ``types`` — updates → ``TelegramIncomingMessage`` / ``TelegramCallbackQuery``,
  de-duplication; ``polling`` — ``getUpdates`` long polling;
- ``loop`` — ``TelegramLoop``, the composition root; ``gate`` — which updates are handled;
  ``routing`` / ``steps`` — the ordered routing steps (forward ⇒ media group ⇒ context ⇒
  cancel ⇒ new ⇒ builtins ⇒ trigger ⇒ voice ⇒ document ⇒ plugin ⇒ prompt); ``prompts`` —
  prompt resolution and the forward coalescer (``coalesce``); ``runs`` — ``RunLauncher``
  (scheduler, running tasks, ``handle_message``); ``cancel``; ``dispatch`` — command plugins;
  ``menu`` — ``setMyCommands``; ``trigger`` — ``mentions`` mode; ``preferences`` /
  ``scope`` / ``sessions`` — what a chat's settings and stored sessions resolve to;
  ``builtins`` — ``/agent``, ``/model``, ``/reasoning``, ``/trigger``, ``/ctx``;
  ``replies``, ``background``; ``executor`` — ``ctx.executor`` for command plugins;
  ``deliveries`` — journaled outcomes at startup; ``commands`` — slash-command parsing;
- ``state_store`` (``JsonStateStore[T]``), ``chat_sessions``, ``chat_prefs`` — state files;
- ``backend`` — the ``TransportBackend``; ``onboarding`` — token check and chat capture helpers
  for the CLI wizard; ``files`` — path-safety and safe-write helpers (other transports import
  them too);
- ``media`` wires the file and voice features, ``media_steps`` routes to them;
  ``file_transfer`` — ``/file put|get``; ``uploads`` — auto-put of documents, photos, videos
  and albums; ``media_groups`` — the album buffer; ``attachments`` — a message's file and
  fetching it; ``voice`` — voice notes; ``transcription`` — the OpenAI-compatible
  speech-to-text client.

Forum topics: ``topics`` (scope, validation), ``topic_state`` (the state file),
``context_cmds`` (``/ctx``, ``/topic``, topic binding and the unbound-topic notice).
"""
