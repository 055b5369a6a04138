"""A stand-in for Telegram's Bot API: the HTTP contract aiogram speaks, in memory, with /sim/.

The platform's bot is tested against it instead of api.telegram.org: same URLs, same form and
JSON bodies, same `{"ok": ...}` answers and error descriptions, plus a control API under `/sim/`
where a test plays the user (types messages, blocks the bot) and reads what the bot sent.
Run it with `python -m telegram_sim --bot 123:ABC=checkout_bot`.
"""
