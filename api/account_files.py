"""The mail server's list of a domain's accounts, as sync-accounts reads it: CSV with a header
(username,name,externalId,isDomainAdmin; only username is needed) or JSON Lines with the same
keys. Read as a stream: each line becomes a record, or what is wrong with it, with its number."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path
from typing import IO, Any

import orjson

from api.services.provisioning import AccountRecord

KEYS = ("username", "name", "externalId", "isDomainAdmin")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def read_records(stream: IO[str], *, name: str) -> Iterator[tuple[int, AccountRecord | str]]:
    """(line number, record or what is wrong with it) for each line of the file, CSV with a
    header or JSON Lines (told apart by the name's suffix, else by the first character)."""
    suffix = Path(name).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return _json_lines(stream)
    if suffix == ".csv":
        return _csv(stream)
    first = stream.readline()
    lines = chain([first], stream)
    return _json_lines(lines) if first.lstrip().startswith("{") else _csv(lines)


def _csv(stream: Iterable[str]) -> Iterator[tuple[int, AccountRecord | str]]:
    reader = csv.DictReader(stream)
    header = reader.fieldnames or []
    unknown = [key for key in header if key not in KEYS]
    if "username" not in header or unknown:
        yield (
            1,
            f"the header must name username and may name {', '.join(KEYS[1:])}"
            + (f"; unknown: {', '.join(unknown)[:200]}" if unknown else ""),
        )
        return
    for row in reader:
        line = reader.line_num
        if None in row:
            yield line, "more fields than the header names"
            continue
        try:
            yield (
                line,
                _record(
                    row.get("username") or "",
                    row.get("name") or None,
                    row.get("externalId") or None,
                    _flag(row.get("isDomainAdmin") or ""),
                ),
            )
        except ValueError as error:
            yield line, str(error)


def _flag(value: str) -> bool | None:
    text = value.strip().lower()
    if not text:
        return None
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise ValueError(f"isDomainAdmin is true or false, not {value[:20]!r}")


def _json_lines(stream: Iterable[str]) -> Iterator[tuple[int, AccountRecord | str]]:
    for line, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            yield line, "not a JSON object"
            continue
        if not isinstance(data, dict):
            yield line, "not a JSON object"
            continue
        unknown = [key for key in data if key not in KEYS]
        try:
            if unknown:
                raise ValueError(f"unknown keys: {', '.join(map(str, unknown))[:200]}")
            yield (
                line,
                _record(
                    _text(data, "username") or "",
                    _text(data, "name"),
                    _text(data, "externalId"),
                    _boolean(data.get("isDomainAdmin")),
                ),
            )
        except ValueError as error:
            yield line, str(error)


def _text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key} is a string")
    return value


def _boolean(value: object) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ValueError("isDomainAdmin is true, false or null")
    return value


def _record(
    username: str, name: str | None, external_id: str | None, admin: bool | None
) -> AccountRecord:
    if not username.strip():
        raise ValueError("username is missing")
    return AccountRecord(username, name, external_id, admin)
