"""Logging helpers: the JSON line format and a rate limit for repeated warnings.

Library modules only call ``logging.getLogger(__name__)``; ``configure`` is
called by entry points such as ``vv-start``.
"""

from __future__ import annotations

import json
import logging
import sys
import time

__all__ = ["JsonFormatter", "RateLimitedLog", "configure"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """Format each record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: str = "INFO", log_format: str = "text") -> None:
    """Send every log record to stderr as text lines or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class RateLimitedLog:
    """Emit at most one record per ``interval_s``; count and report the rest.

    Used where a condition repeats quickly, such as every read failing while
    Redis is down.
    """

    def __init__(self, logger: logging.Logger, interval_s: float = 1.0) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._last_s = float("-inf")
        self._suppressed = 0

    def log(self, level: int, message: str, *args: object) -> None:
        now_s = time.monotonic()
        if now_s - self._last_s < self.interval_s:
            self._suppressed += 1
            return
        if self._suppressed:
            message += " (%d similar lines suppressed)"
            args = (*args, self._suppressed)
        self._last_s = now_s
        self._suppressed = 0
        self.logger.log(level, message, *args)
