"""What the signer process holds: its keys (keys.py) and its signed log (signed_log.py)."""
