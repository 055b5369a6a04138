"""Merchant webhooks, the parts that touch the outside world.

Signing secrets encrypted at rest (``secrets``) and the SSRF guard for merchant-supplied URLs
(``ssrf``). The pure rules (signatures, retry schedule, event filters, the body) live in
``app.domain.webhooks``; ``docs/webhooks.md`` is what merchants read.
"""
