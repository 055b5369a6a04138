"""Adapters: the world behind the services' ports (app/services/ports.py).

- ``postgres/`` — ledger, merchants, idempotency keys, projections and read models, the webhook
  store, the chain watcher's cursor, deposit-address allocation, migrations.
- ``redis/`` — the customers' live views and their fan-out, command replies.
- ``tron/`` — the java-tron node client, log decoding, the chain watcher, deposit addresses.
- ``webhooks/`` — signing, the retry schedule, secrets at rest, the SSRF guard, the sender.

Nothing here knows Faust; app/runtime/ does.
"""
