"""The ``console`` transport: chat with takopi in a local terminal (no Telegram needed)."""
