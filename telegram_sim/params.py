"""Reading Bot API parameters the way Telegram does: query string, form, multipart or JSON.

aiogram's AiohttpSession posts a form: scalars as strings (`"true"`, `"42"`), objects such as
reply_markup as JSON-encoded strings, and files as multipart parts referenced by `attach://<name>`.
Other clients post JSON with native values, or put everything in the query string. Every
coercion below accepts both spellings, so a handler never cares which one arrived.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import BodyPartReader, MultipartReader, StreamReader

from telegram_sim.errors import bad_request, entity_too_large

Params = dict[str, Any]

CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Upload:
    """A file part of a multipart request."""

    filename: str
    content_type: str
    data: bytes


async def read_capped(stream: StreamReader, limit: int) -> bytes:
    """The whole body, refusing more than `limit` bytes however it is framed (chunked too)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise entity_too_large()
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(
    headers: Mapping[str, str], stream: StreamReader, limit: int, into: Params
) -> None:
    """Add the body's fields to `into`; the body is JSON, urlencoded or multipart form data."""
    content_type = headers.get("Content-Type", "").lower()
    if content_type.startswith("multipart/"):
        await _read_multipart(MultipartReader(headers, stream), limit, into)
        return
    raw = await read_capped(stream, limit)
    if not raw.strip():
        return
    if content_type.startswith("application/json"):
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise bad_request("can't parse JSON encoded request body") from None
        if not isinstance(data, dict):
            raise bad_request("JSON request body must be an object")
        into.update(data)
    elif content_type.startswith("application/x-www-form-urlencoded"):
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            raise bad_request("request body is not valid UTF-8") from None
        into.update(parse_qsl(text, keep_blank_values=True))


async def _read_multipart(reader: MultipartReader, limit: int, into: Params) -> None:
    size = 0
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or not part.name:
            continue  # nested multipart or nameless parts carry no Bot API parameter
        chunks: list[bytes] = []
        while chunk := await part.read_chunk(CHUNK):
            size += len(chunk)
            if size > limit:
                raise entity_too_large()
            chunks.append(chunk)
        data = b"".join(chunks)
        if part.filename is not None:
            content_type = part.headers.get("Content-Type", "application/octet-stream")
            into[part.name] = Upload(part.filename, content_type, data)
            continue
        try:
            into[part.name] = data.decode(part.get_charset("utf-8"))
        except (UnicodeDecodeError, LookupError):
            raise bad_request(f'parameter "{part.name}" is not valid UTF-8') from None


# ----- coercions: form strings and JSON natives alike


def text(params: Params, name: str) -> str | None:
    """A string parameter; numbers sent as JSON are accepted as their decimal text."""
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value
    raise bad_request(f'parameter "{name}" must be a string')


def integer(params: Params, name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise bad_request(f'parameter "{name}" must be an integer')


def number(params: Params, name: str, default: float) -> float:
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise bad_request(f'parameter "{name}" must be a number')


def flag(params: Params, name: str) -> bool:
    value = params.get(name)
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str) and value.strip().lower() in {"true", "1", "false", "0"}:
        return value.strip().lower() in {"true", "1"}
    raise bad_request(f'parameter "{name}" must be a Boolean')


def json_value(params: Params, name: str, problem: str) -> Any:
    """A parameter that is an object or array: a JSON string in forms, native in JSON bodies.

    `problem` is Telegram's own description for an unparsable one, e.g. "can't parse reply
    keyboard markup JSON object".
    """
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise bad_request(problem) from None
    if isinstance(value, dict | list):
        return value
    raise bad_request(problem)
