"""The payment rules of crypto-checkout, pure Python.

Nothing in this package imports faust, aiohttp, aiopg, redis or tronpy: agents and views decode
input, call into here, and write out what comes back.
"""
