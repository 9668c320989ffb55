"""Salted scrypt hashes for hashed fields such as passwords.

A hash is stored as ``scrypt$<n>$<r>$<p>$<salt>$<digest>`` with salt and
digest in URL-safe base64, so the cost parameters can change later without
breaking hashes written earlier.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

__all__ = ["hash_secret", "verify_secret"]

# scrypt cost: n=2**14, r=8 uses 128 * n * r = 16 MiB per hash. Raise n
# when hashing a login becomes cheap enough on the target hardware.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
DIGEST_BYTES = 32
_MAX_MEMORY_BYTES = 64 * 1024 * 1024
_SCHEME = "scrypt"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAX_MEMORY_BYTES, dklen=DIGEST_BYTES
    )


def hash_secret(secret: str) -> str:
    """Return a salted scrypt hash of ``secret`` in the stored text form."""
    salt = os.urandom(SALT_BYTES)
    digest = _scrypt(secret, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join([_SCHEME, str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)])


def verify_secret(stored: str | None, candidate: str) -> bool:
    """Return whether ``candidate`` hashes to ``stored``; False for a missing or malformed hash."""
    if not stored:
        return False
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        return False
    n, r, p = (int(part) for part in parts[1:4])
    digest = _scrypt(candidate, _unb64(parts[4]), n, r, p)
    return hmac.compare_digest(digest, _unb64(parts[5]))
