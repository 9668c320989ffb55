"""The HTTP gateway of the caffeine-manager app.

It maps ``/<service>/<method words>/<ids>`` plus the query string and a JSON
body onto an RPC of the caffeine-manager app, and only onto methods that the
service marks as reachable over HTTP. ``GET /health`` reports the health of
every service of the app.
"""

from vv.gateway import Gateway


class Api(Gateway):
    """HTTP gateway of the caffeine-manager app."""
