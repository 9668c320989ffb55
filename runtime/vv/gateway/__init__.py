"""The HTTP gateway: maps HTTP requests onto RPCs of one app.

``Gateway`` is the service class of an app's ``api`` component. The route
rules live in ``vv.gateway._routes``, the response bodies in
``vv.gateway._envelope`` and the aiohttp application in
``vv.gateway._server``.
"""

from vv.gateway._gateway import Gateway
from vv.gateway._server import build_app

__all__ = ["Gateway", "build_app"]
