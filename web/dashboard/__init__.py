"""The merchant dashboard: server-rendered pages over the merchant API (see views.py)."""

from web.dashboard.api import LoopbackApi
from web.dashboard.views import Dashboard

__all__ = ["Dashboard", "LoopbackApi"]
