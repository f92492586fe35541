"""The web dashboard served by the gateway at ``/ui`` (admin key required)."""

from modelmix.dashboard.routes import dashboard_routes

__all__ = ["dashboard_routes"]
