"""A Tron node simulator: the java-tron HTTP API, a USDT TRC-20 ledger, blocks and reorgs.

Run it with `python -m tron_sim`; see docs/tron-simulator.md.
"""
