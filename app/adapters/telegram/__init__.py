"""Telegram through its Bot API with aiogram 3: the client, pushes to linked chats, long polling.

The Bot API's base URL is a setting (``TELEGRAM_API_URL``): Telegram's own in production, the
stand-in the project ships (telegram_sim/) in tests and locally.
"""
