"""Write strings as YAML scalars that every YAML reader takes literally.

Every generated value is written as a double-quoted scalar. In that style
YAML 1.1 (PyYAML, older tools) and YAML 1.2 (compose, kubectl) both read a
string and never a boolean, number, date or null, so ``yes``, ``0123`` and
``12:30`` survive. Characters that are not printable in YAML, and the YAML 1.1
line breaks (U+0085, U+2028, U+2029), are escaped so that a value stays on
one line and is never folded.

Compose also interpolates ``$`` in every string, and Kubernetes expands
``$(NAME)`` in env values and commands. Both reduce ``$$`` to ``$``, so
``literal_for_compose`` and ``literal_for_kubernetes`` double each ``$``.
"""

from __future__ import annotations

import re

_NAMED_ESCAPES = {
    "\0": "\\0",
    "\a": "\\a",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\v": "\\v",
    "\f": "\\f",
    "\r": "\\r",
    "\x1b": "\\e",
    '"': '\\"',
    "\\": "\\\\",
}
# Characters outside YAML 1.1's printable set, its extra line breaks, the byte
# order mark, the two non-characters, and the quote and backslash themselves.
_NEEDS_ESCAPE = re.compile('["\\\\\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]')


def _escape(match: re.Match[str]) -> str:
    char = match[0]
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    code = ord(char)
    return f"\\x{code:02X}" if code <= 0xFF else f"\\u{code:04X}"


def yaml_quote(value: object) -> str:
    """Return ``value`` as a double-quoted YAML scalar that reads back as the same string."""
    return '"' + _NEEDS_ESCAPE.sub(_escape, str(value)) + '"'


def literal_for_compose(value: object) -> str:
    """Quote a value for a compose file so that interpolation leaves it unchanged."""
    return yaml_quote(str(value).replace("$", "$$"))


def literal_for_kubernetes(value: object) -> str:
    """Quote an env value or command argument so that Kubernetes' ``$(NAME)`` expansion leaves it unchanged."""
    return yaml_quote(str(value).replace("$", "$$"))
