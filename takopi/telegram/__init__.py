"""The built-in Telegram transport (Bot API long polling)."""
