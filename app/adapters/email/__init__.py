"""Outgoing email over SMTP (smtp.py)."""
