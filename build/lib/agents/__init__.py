"""The agents and timers of a worker: thin — decode, call a service, publish.

Each module holds the message handler of one agent (a class, built with its service and the
runtime helpers it needs) and a ``register`` function that app/bootstrap.py calls to put it on
the Faust app. Nothing here is registered by importing it.
"""
