"""The integrator contract as files: event JSON Schemas and the compatibility guard.

Command-line tools over the domain's event registry (``python -m app.contract.schemas``,
``python -m app.contract.compat``); nothing in the worker imports them.
"""
