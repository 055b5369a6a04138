"""The worker's HTTP views: parse, call a service, present.

Each module holds a class built with the services it calls and an ``add_routes(router)``;
app/bootstrap.py puts them on the aiohttp application Faust runs. ``web/errors.py`` is the one
middleware that turns errors into the one JSON error shape; ``web/request_metrics.py`` times
every answer by route; ``web/tracing.py`` makes each request a span and names it in the logs.
"""

from web.errors import error_middleware
from web.input import input_guard
from web.request_metrics import request_metrics
from web.tracing import request_tracing

# Outermost first: the request's span and id cover all of it, every answer is timed as it
# leaves, and every error, the guard's included, is answered in the one error shape.
MIDDLEWARES = (request_tracing, request_metrics, error_middleware, input_guard)
