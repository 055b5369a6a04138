"""Merchant webhooks, the parts that touch the outside world.

``signing`` (the ``Checkout-Signature`` header and the exact body), ``schedule`` (when a failed
delivery is tried again), ``secrets`` (signing secrets encrypted at rest), ``ssrf`` (the guard for
merchant-supplied URLs), ``dispatcher`` (the sender and the per-worker delivery loop) and
``config`` (what the settings make of them). Which events an endpoint wants is a domain rule
(``app.domain.webhooks``); ``docs/webhooks.md`` is what merchants read.
"""
