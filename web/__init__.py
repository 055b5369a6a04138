"""The worker's HTTP views: parse, call a service, present.

Each module holds a class built with the services it calls and an ``add_routes(router)``;
app/bootstrap.py puts them on the aiohttp application Faust runs. ``web/errors.py`` is the one
middleware that turns errors into the one JSON error shape.
"""

from web.errors import error_middleware
from web.input import input_guard

# Outermost first: every error, the guard's included, is answered in the one error shape.
MIDDLEWARES = (error_middleware, input_guard)
