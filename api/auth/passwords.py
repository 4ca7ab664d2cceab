"""Argon2id password hashing, run off the event loop (each hash costs tens of milliseconds)."""

from __future__ import annotations

import asyncio
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2-cffi's defaults are RFC 9106's low-memory Argon2id profile


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


@cache
def _dummy_hash() -> str:
    return _hasher.hash("not a real password: evens out the time of an unknown username")


async def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; with no hash (unknown user) it spends the same time."""
    candidate = password_hash if password_hash is not None else _dummy_hash()
    try:
        ok = await asyncio.to_thread(_hasher.verify, candidate, password)
    except (VerificationError, InvalidHashError):
        return False
    return ok and password_hash is not None
