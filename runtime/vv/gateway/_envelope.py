"""The JSON bodies of the gateway's responses.

Success is status 200 with ``{"response": <result>}``. An error is sent with
its code as the HTTP status and the body
``{"error_code": <code>, "error_text": "<text>"}``, so a client can read the
outcome from either.
"""

from __future__ import annotations

from typing import Any

from vv._errors import RemoteError

__all__ = ["error_body", "success_body"]


def success_body(result: Any) -> dict[str, Any]:
    """Wrap an RPC result for a 200 response."""
    return {"response": result}


def error_body(error: RemoteError) -> dict[str, Any]:
    """Describe an error for a response whose status is ``error.code``."""
    return {"error_code": error.code, "error_text": error.text}
