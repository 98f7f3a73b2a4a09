"""Fake external services used by the tests (model provider, Telegram Bot API)."""
