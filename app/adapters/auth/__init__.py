"""Merchant users' credentials: who may sign in to the dashboard, and how a session is carried.

Passwords are stored only as argon2id hashes (``passwords``); a signed-in user carries a
short-lived HS256 JWT access token and an opaque, rotating refresh token whose secret the database
holds only as an HMAC (``tokens``). Machine access through API keys (``ck_…``) is a separate
mechanism, in ``app/adapters/postgres/merchants.py``.
"""
