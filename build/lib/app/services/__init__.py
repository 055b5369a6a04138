"""The application layer: one module per use case, each talking to the world through ports.

A use case takes its ports (app/services/ports.py: typed ``Protocol``s for the event publisher,
the ledger, the merchant store, …) as constructor arguments. Nothing here imports faust, aiohttp,
aiopg, redis or tronpy: app/bootstrap.py hands real adapters in, the tests in-memory fakes.
"""
