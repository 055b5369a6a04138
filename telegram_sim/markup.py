"""Telegram's `parse_mode=HTML`: the strict subset it accepts, its errors, and the entities.

Telegram does not sanitise HTML, it refuses the message: an unknown tag, a stray `<` or an
unclosed `<b>` fail the whole send with "can't parse entities: ..." and the user gets nothing.
That is the failure worth catching in tests (an unescaped amount or merchant name in a template),
so this parser follows the Bot API rules closely: the tags listed in ALLOWED_TAGS, only the
entities &lt; &gt; &amp; &quot; and numeric ones, error messages with UTF-8 byte offsets as
Telegram words them, and entity offsets and lengths in UTF-16 code units as it counts them.
Markdown and MarkdownV2 are accepted but not parsed (the text is kept as sent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from telegram_sim.errors import bad_request

# tg-emoji is left out on purpose: Telegram refuses it for bots without a Fragment username.
ALLOWED_TAGS = frozenset(
    {
        "a", "b", "strong", "i", "em", "u", "ins", "s", "strike", "del",
        "code", "pre", "tg-spoiler", "span", "blockquote",
    }
)  # fmt: skip
ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "code": "code",
    "pre": "pre",
}
NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")
PARSE_MODES = {"html", "markdown", "markdownv2"}


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


@dataclass(frozen=True, slots=True)
class Formatted:
    """What the user sees: the text without markup, and its entities."""

    text: str
    entities: list[dict[str, Any]]


@dataclass(slots=True)
class _Open:
    tag: str
    start: int  # UTF-16 offset in the output where the entity begins
    after: int  # index in the source just past the start tag's ">"
    attributes: dict[str, str] = field(default_factory=dict)


class _MarkupError(Exception):
    pass


class _HtmlParser:
    """One pass over the source; `pos` is an index into it (code points)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.pos = 0
        self.out: list[str] = []
        self.offset = 0  # UTF-16 length of the output so far
        self.stack: list[_Open] = []
        self.entities: list[dict[str, Any]] = []

    def byte_offset(self, pos: int) -> int:
        return len(self.source[:pos].encode("utf-8", "surrogatepass"))

    def emit(self, text: str) -> None:
        self.out.append(text)
        self.offset += utf16_length(text)

    def skip_spaces(self) -> None:
        while self.pos < len(self.source) and self.source[self.pos].isspace():
            self.pos += 1

    def parse(self) -> Formatted:
        source = self.source
        while self.pos < len(source):
            char = source[self.pos]
            if char == "&":
                decoded, end = decode_entity(source, self.pos)
                if decoded is not None:
                    self.emit(decoded)
                    self.pos = end
                    continue
            if char != "<":
                self.emit(char)
                self.pos += 1
            elif source.startswith("</", self.pos):
                self.end_tag()
            else:
                self.start_tag()
        if self.stack:
            raise _MarkupError(
                f'Can\'t find end tag corresponding to start tag "{self.stack[-1].tag}"'
            )
        return Formatted("".join(self.out), self.entities)

    def start_tag(self) -> None:
        source, begin = self.source, self.pos
        self.pos += 1
        while self.pos < len(source) and not source[self.pos].isspace() and source[self.pos] != ">":
            self.pos += 1
        if self.pos >= len(source):
            raise _MarkupError(f"Unclosed start tag at byte offset {self.byte_offset(begin)}")
        tag = source[begin + 1 : self.pos].lower()
        if tag not in ALLOWED_TAGS:
            raise _MarkupError(
                f'Unsupported start tag "{tag}" at byte offset {self.byte_offset(begin)}'
            )
        attributes = self.attributes(tag, begin)
        if tag == "span" and attributes.get("class") != "tg-spoiler":
            raise _MarkupError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {self.byte_offset(begin)}'
            )
        self.stack.append(_Open(tag, self.offset, self.pos, attributes))

    def attributes(self, tag: str, begin: int) -> dict[str, str]:
        source = self.source
        found: dict[str, str] = {}
        unclosed = f'Unclosed start tag "{tag}" at byte offset {self.byte_offset(begin)}'
        while True:
            self.skip_spaces()
            if self.pos >= len(source):
                raise _MarkupError(unclosed)
            if source[self.pos] == ">":
                self.pos += 1
                return found
            name_start = self.pos
            while self.pos < len(source) and not (
                source[self.pos].isspace() or source[self.pos] in "=>/\"'"
            ):
                self.pos += 1
            name = source[name_start : self.pos].lower()
            if not name:
                raise _MarkupError(
                    f'Empty attribute name in the tag "{tag}" at byte offset '
                    f"{self.byte_offset(begin)}"
                )
            self.skip_spaces()
            if self.pos >= len(source):
                raise _MarkupError(unclosed)
            if source[self.pos] != "=":
                found[name] = ""  # a bare attribute, e.g. <blockquote expandable>
                continue
            self.pos += 1
            self.skip_spaces()
            if self.pos >= len(source):
                raise _MarkupError(unclosed)
            found[name] = self.attribute_value()

    def attribute_value(self) -> str:
        source = self.source
        quote = source[self.pos]
        if quote not in "\"'":
            start = self.pos
            while self.pos < len(source) and source[self.pos] in TOKEN_CHARS:
                self.pos += 1
            if self.pos < len(source) and not (
                source[self.pos].isspace() or source[self.pos] == ">"
            ):
                raise _MarkupError(
                    f"Unexpected end of name token at byte offset {self.byte_offset(self.pos)}"
                )
            return source[start : self.pos].lower()
        self.pos += 1
        value: list[str] = []
        while self.pos < len(source) and source[self.pos] != quote:
            if source[self.pos] == "&":
                decoded, end = decode_entity(source, self.pos)
                if decoded is not None:
                    value.append(decoded)
                    self.pos = end
                    continue
            value.append(source[self.pos])
            self.pos += 1
        self.pos += 1  # the closing quote; past the end is caught by the caller's next check
        return "".join(value)

    def end_tag(self) -> None:
        source, begin = self.source, self.pos
        if not self.stack:
            raise _MarkupError(f"Unexpected end tag at byte offset {self.byte_offset(begin)}")
        self.pos += 2
        name_start = self.pos
        while self.pos < len(source) and not source[self.pos].isspace() and source[self.pos] != ">":
            self.pos += 1
        name = source[name_start : self.pos].lower()
        self.skip_spaces()
        if self.pos >= len(source) or source[self.pos] != ">":
            raise _MarkupError(f"Unclosed end tag at byte offset {self.byte_offset(begin)}")
        self.pos += 1
        opened = self.stack.pop()
        if name and name != opened.tag:
            raise _MarkupError(
                f"Unmatched end tag at byte offset {self.byte_offset(begin)}, "
                f'expected "</{opened.tag}>", found "</{name}>"'
            )
        if self.offset > opened.start:
            self.close(opened, begin)

    def close(self, opened: _Open, end_pos: int) -> None:
        span = {"offset": opened.start, "length": self.offset - opened.start}
        tag = opened.tag
        if tag == "a":
            # <a>url</a> without href links to its own text, markup included, as Telegram does.
            url = _normalise_url(
                opened.attributes.get("href") or self.source[opened.after : end_pos]
            )
            if url:
                self.entities.append({"type": "text_link", **span, "url": url})
        elif tag == "blockquote":
            kind = "expandable_blockquote" if "expandable" in opened.attributes else "blockquote"
            self.entities.append({"type": kind, **span})
        elif tag == "pre" and self._inner_code_matches(span):
            # <pre><code class="language-x">…</code></pre> is one pre entity with a language.
            code = self.entities.pop()
            self.entities.append({"type": "pre", **span, **_language(code)})
        elif tag == "code":
            language = opened.attributes.get("class", "")
            entity = {"type": "code", **span}
            if language.startswith("language-") and len(language) > len("language-"):
                entity["language"] = language.removeprefix("language-")
            self.entities.append(entity)
        else:
            self.entities.append({"type": ENTITY_TYPES[tag], **span})

    def _inner_code_matches(self, span: dict[str, int]) -> bool:
        if not self.entities:
            return False
        last = self.entities[-1]
        return bool(
            last["type"] == "code"
            and last["offset"] == span["offset"]
            and last["length"] == span["length"]
        )


def _language(code_entity: dict[str, Any]) -> dict[str, Any]:
    return {"language": code_entity["language"]} if "language" in code_entity else {}


def _normalise_url(url: str) -> str:
    url = url.strip()
    if not url or any(char.isspace() for char in url):
        return ""  # Telegram silently drops a link it cannot use; the text stays
    if "://" not in url and not url.startswith(("tg:", "mailto:")):
        return "http://" + url + ("/" if "/" not in url else "")
    return url


def decode_entity(source: str, pos: int) -> tuple[str | None, int]:
    """The character `&...;` at `pos` stands for, and the index after it; (None, pos) if none."""
    end = source.find(";", pos + 1, pos + 12)
    if end < 0:
        return None, pos
    name = source[pos + 1 : end]
    if name in NAMED_ENTITIES:
        return NAMED_ENTITIES[name], end + 1
    if name.startswith("#"):
        digits, base = (name[2:], 16) if name[1:2] in {"x", "X"} else (name[1:], 10)
        try:
            code = int(digits, base) if digits.isalnum() else -1
        except ValueError:
            return None, pos
        if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
            return chr(code), end + 1
    return None, pos


def _trim(formatted: Formatted) -> Formatted:
    """Telegram strips leading and trailing whitespace and moves the entities with the text."""
    text = formatted.text
    stripped = text.lstrip()
    shift = utf16_length(text[: len(text) - len(stripped)])
    stripped = stripped.rstrip()
    size = utf16_length(stripped)
    entities = []
    for entity in formatted.entities:
        start = max(entity["offset"] - shift, 0)
        end = min(entity["offset"] + entity["length"] - shift, size)
        if end > start:
            entities.append({**entity, "offset": start, "length": end - start})
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return Formatted(stripped, entities)


def parse_html(source: str) -> Formatted:
    try:
        return _trim(_HtmlParser(source).parse())
    except _MarkupError as exc:
        raise bad_request(f"can't parse entities: {exc}") from None


def check_parse_mode(parse_mode: str | None) -> str | None:
    """The parse_mode as given, or None; any spelling of HTML/Markdown/MarkdownV2 is fine."""
    if not parse_mode:
        return None
    if parse_mode.lower() not in PARSE_MODES:
        raise bad_request("unsupported parse_mode")
    return parse_mode


def format_text(source: str, parse_mode: str | None, entities: Any) -> Formatted:
    """The text the user sees. Explicit `entities` win over parse_mode, as in the Bot API."""
    if entities is not None:
        return _trim(Formatted(source, _checked_entities(entities)))
    if parse_mode is not None and parse_mode.lower() == "html":
        return parse_html(source)
    return _trim(Formatted(source, []))


def _checked_entities(entities: Any) -> list[dict[str, Any]]:
    problem = "can't parse entities JSON object"
    if not isinstance(entities, list):
        raise bad_request(problem)
    for entity in entities:
        if not (
            isinstance(entity, dict)
            and isinstance(entity.get("type"), str)
            and isinstance(entity.get("offset"), int)
            and isinstance(entity.get("length"), int)
        ):
            raise bad_request(problem)
    return entities
