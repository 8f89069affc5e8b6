"""``.symbi`` text -> syntax tree with positions.

The parser raises nothing but :class:`DslError`, whatever the input: every
diagnostic carries ``FILE:LINE:COL``, the source line and a caret.
"""

from __future__ import annotations

import functools
import json
import os
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from symbid.errors import InvalidInput
from symbid.text import escape
from symbid.timing import parse_duration

MAX_DEPTH = 32  # nesting of maps and arrays in schedule and agent blocks
MAX_NESTING = 256  # any brackets, skipped blocks too: checked before parsing
MAX_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Pos:
    line: int
    col: int


EXCERPT = 120  # characters of a source line shown under a diagnostic (plus "..." each side)


@dataclass(frozen=True)
class Diagnostic:
    path: str
    line: int
    col: int
    message: str
    source_line: str = ""

    def headline(self) -> str:
        """``path:line:col: message`` on one line."""
        return f"{self.path}:{self.line}:{self.col}: {self.message}"

    def format(self) -> str:
        """The headline, then the source line (at most EXCERPT characters around the
        column, control characters escaped) with a caret under the column."""
        text = self.headline()
        if self.source_line:
            line = self.source_line.expandtabs(1)
            start = max(0, min(self.col - 1 - EXCERPT // 2, len(line) - EXCERPT))
            shown = line[start:start + EXCERPT]
            lead, tail = ("..." if start > 0 else ""), ("..." if start + EXCERPT < len(line)
                                                       else "")
            caret = len(lead) + len(escape(shown[:max(0, self.col - 1 - start)]))
            text += f"\n    {lead}{escape(shown)}{tail}\n    {' ' * caret}^"
        return text


class DslError(InvalidInput):
    """One or more problems in a ``.symbi`` file."""

    code = "invalid_dsl"

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("\n".join(d.format() for d in diagnostics))


@dataclass
class Value:
    """A value in the tree: kind is string, number, duration, bool, ident, array or map."""

    kind: str
    value: Any  # str | int | float | bool | list[Value] | list[Entry]
    pos: Pos
    raw: str = ""


@dataclass
class Entry:
    key: str
    key_pos: Pos
    value: Value
    block: bool = False  # written `key { ... }` rather than `key: { ... }`


@dataclass
class Block:
    kind: str  # "schedule" or "agent"
    name: Optional[str]
    name_pos: Optional[Pos]
    entries: list[Entry]
    pos: Pos


@dataclass
class Skipped:
    keyword: str
    pos: Pos


@dataclass
class Document:
    path: str
    text: str
    blocks: list[Block] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def diagnostic(self, pos: Pos, message: str) -> Diagnostic:
        return make_diagnostic(self.path, self.text, pos, message)


def make_diagnostic(path: str, text: str, pos: Pos, message: str) -> Diagnostic:
    lines = text.split("\n")  # the parser counts lines by \n only
    source = lines[pos.line - 1].rstrip("\r") if 0 < pos.line <= len(lines) else ""
    return Diagnostic(path, pos.line, pos.col, message, source)


@functools.lru_cache(maxsize=1)
def _lark() -> Any:
    from lark import Lark

    grammar = os.path.join(os.path.dirname(__file__), "grammar.lark")
    with open(grammar, encoding="utf-8") as fh:
        return Lark(fh.read(), parser="lalr", propagate_positions=True,
                    maybe_placeholders=True)


_NAMES = {
    "LBRACE": "'{'", "RBRACE": "'}'", "LBRACKET": "'['", "RBRACKET": "']'",
    "COLON": "':'", "EQUALS": "'='", "COMMA": "','", "NAME": "a name", "STRING": "a string",
    "TRIPLE_STRING": "a string", "NUMBER": "a number", "DURATION": "a duration",
    "TRUE": "true", "FALSE": "false", "SCHEDULE": "'schedule'", "AGENT": "'agent'",
    "OP": "an operator", "$END": "the end of the file",
}


def _describe_expected(expected: Any) -> str:
    names = sorted({_NAMES.get(str(e), str(e).lower()) for e in expected or ()})
    if not names:
        return ""
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]


def _describe_token(token: Any) -> str:
    kind = getattr(token, "type", "")
    if kind == "$END":
        return "the end of the file"
    value = str(token)
    if kind in ("STRING", "TRIPLE_STRING"):
        return f"string {value[:40]}"
    if kind in ("NAME", "NUMBER", "DURATION"):
        return f"{_NAMES[kind]} {value[:40]!r}"
    return f"{value[:40]!r}"


def _unclosed_brace(text: str) -> Optional[Pos]:
    """Where the innermost brace that is never closed was opened, if any."""
    try:
        tokens = list(_lark().lex(text))
    except Exception:
        return None
    stack: list[Pos] = []
    for tok in tokens:
        if tok.type == "LBRACE":
            stack.append(Pos(tok.line, tok.column))
        elif tok.type == "RBRACE" and stack:
            stack.pop()
    return stack[-1] if stack else None


def _end_pos(text: str) -> Pos:
    lines = text.split("\n")
    return Pos(len(lines), len(lines[-1]) + 1)


def _syntax_error(path: str, text: str, exc: Exception) -> DslError:
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

    if isinstance(exc, UnexpectedCharacters):
        pos = Pos(exc.line, exc.column)
        char = exc.char
        if char == '"':
            line = text.split("\n")[pos.line - 1] if pos.line >= 1 else ""
            start = pos.col - 3
            if start >= 0 and line[start:start + 3] == '"""':
                pos = Pos(pos.line, start + 1)
                message = 'unterminated """ string: the closing """ is missing'
            else:
                message = 'unterminated string: the closing " is missing'
        elif char == "/" and text[(exc.pos_in_stream or 0):(exc.pos_in_stream or 0) + 2] == "/*":
            message = "unterminated comment: the closing */ is missing"
        else:
            message = f"unexpected character {char!r}"
        return DslError([make_diagnostic(path, text, pos, message)])
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        pos = Pos(exc.token.line, exc.token.column)
        message = f"unexpected {_describe_token(exc.token)}"
        try:  # what the parser would really take here (exc.expected can be the lexer's set)
            accepted = exc.interactive_parser.accepts()  # type: ignore[no-untyped-call]
        except Exception:
            accepted = exc.expected
        expected = _describe_expected(accepted)
        if expected:
            message += f"; expected {expected}"
        return DslError([make_diagnostic(path, text, pos, message)])
    if isinstance(exc, (UnexpectedEOF, UnexpectedToken)):
        opened = _unclosed_brace(text)
        if opened is not None:
            return DslError([make_diagnostic(
                path, text, opened, "this '{' is never closed (the file ends first)")])
        return DslError([make_diagnostic(path, text, _end_pos(text),
                                         "unexpected end of the file")])
    return DslError([make_diagnostic(path, text, Pos(1, 1), f"cannot parse: {exc}")])


def _unescape_triple(raw: str) -> str:
    body = raw[3:-3]
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append({"n": "\n", "t": "\t", '"': '"', "\\": "\\"}.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    text = "".join(out)
    if text.startswith("\n"):
        text = text[1:]
    text = textwrap.dedent(text)
    return text.rstrip(" \t\n") + ("\n" if text.strip() else "")


class _Builder:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.errors: list[Diagnostic] = []

    def fail(self, pos: Pos, message: str) -> None:
        self.errors.append(self.doc.diagnostic(pos, message))

    def pos_of(self, node: Any) -> Pos:
        if hasattr(node, "line") and getattr(node, "line", None) is not None:
            return Pos(node.line, node.column)
        meta = getattr(node, "meta", None)
        if meta is not None and not getattr(meta, "empty", True):
            return Pos(meta.line, meta.column)
        return Pos(1, 1)

    def token_text(self, tok: Any) -> str:
        if tok.type == "STRING":
            try:
                text = str(json.loads(str(tok), strict=False))
                text.encode("utf-8")
                return text
            except ValueError:
                self.fail(self.pos_of(tok), "invalid escape sequence in string")
                return str(tok)[1:-1]
            except UnicodeEncodeError:
                self.fail(self.pos_of(tok), "string contains an escaped lone surrogate "
                                            "(not valid Unicode text)")
                return ""
        return str(tok)

    def value(self, node: Any, depth: int) -> Value:
        if depth > MAX_DEPTH:
            self.fail(self.pos_of(node), f"nested more than {MAX_DEPTH} levels deep")
            return Value("string", "", self.pos_of(node))
        kind = node.data
        pos = self.pos_of(node)
        if kind == "array":
            items = [self.value(child, depth + 1) for child in node.children
                     if hasattr(child, "data")]
            return Value("array", items, pos)
        if kind == "map":
            return Value("map", self.entries(node.children[0], depth + 1), pos)
        tok = node.children[0]
        raw = str(tok)
        if kind == "string":
            return Value("string", self.token_text(tok), pos, raw)
        if kind == "triple":
            return Value("string", _unescape_triple(raw), pos, raw)
        if kind == "number":
            number: Union[int, float] = float(raw) if "." in raw else int(raw)
            return Value("number", number, pos, raw)
        if kind == "duration":
            try:
                seconds = parse_duration(raw)
            except InvalidInput:
                self.fail(pos, f"{raw!r} is not a duration")
                seconds = 0.0
            return Value("duration", seconds, pos, raw)
        if kind in ("true", "false"):
            return Value("bool", kind == "true", pos, raw)
        return Value("ident", raw, pos, raw)

    def entries(self, body: Any, depth: int) -> list[Entry]:
        out = []
        for child in body.children:
            if not hasattr(child, "data"):
                continue
            key_tok = child.children[0].children[0]
            key = self.token_text(key_tok)
            if child.data == "pair":
                value = self.value(child.children[2], depth)
                out.append(Entry(key, self.pos_of(key_tok), value))
            else:  # block
                body_node = child.children[1]
                if depth + 1 > MAX_DEPTH:
                    self.fail(self.pos_of(body_node), f"nested more than {MAX_DEPTH} levels deep")
                    continue
                value = Value("map", self.entries(body_node, depth + 1), self.pos_of(body_node))
                out.append(Entry(key, self.pos_of(key_tok), value, block=True))
        return out

    def build(self, tree: Any) -> None:
        for item in tree.children:
            if item.data == "other":
                word = item.children[0]
                self.doc.skipped.append(Skipped(str(word), self.pos_of(word)))
                continue
            keyword, name_node, body = item.children
            name = name_pos = None
            if name_node is not None:
                tok = name_node.children[0]
                name, name_pos = self.token_text(tok), self.pos_of(tok)
            self.doc.blocks.append(Block(
                kind=item.data, name=name, name_pos=name_pos,
                entries=self.entries(body, 1), pos=self.pos_of(keyword),
            ))


# Strings and comments (whose brackets do not nest), or a bracket. The string and comment
# forms are the grammar's (a triple string may hold escaped newlines), and each also takes
# an unterminated one to its end, so that no input makes the scan go back over itself.
_NESTING = re.compile(r'(?s:"""(?:[^"\\]|\\.|"(?!""))*(?:"""|\Z))'
                      r'|"(?:[^"\\\n]|\\.)*"?'
                      r"|(?:#|//)[^\n]*|(?s:/\*.*?(?:\*/|\Z))|([\[\]{}])")


def _check_nesting(path: str, text: str) -> None:
    """Refuse input nested past the limit before the parser sees it: the work stays bounded
    by the limit, not by how deep the input goes."""
    depth = 0
    for m in _NESTING.finditer(text):
        bracket = m.group(1)
        if bracket is None:
            continue
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_NESTING:
            start = m.start()
            line = text.count("\n", 0, start) + 1
            col = start - (text.rfind("\n", 0, start) + 1) + 1
            source = text[text.rfind("\n", 0, start) + 1:].split("\n", 1)[0]
            raise DslError([Diagnostic(path, line, col,
                                       f"nested more than {MAX_NESTING} levels deep", source)])


def parse_text(text: str, path: str = "<input>") -> Document:
    """Parse ``.symbi`` source; raises :class:`DslError` (only) on bad input."""
    if not isinstance(text, str):
        raise DslError([Diagnostic(path, 1, 1, "input is not text")])
    if len(text) > MAX_BYTES:
        raise DslError([Diagnostic(path, 1, 1, f"file is larger than {MAX_BYTES} bytes")])
    if text.startswith("\ufeff"):
        text = text[1:]  # a UTF-8 byte order mark, as some editors write
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise DslError([Diagnostic(path, line, 1, "file contains a NUL byte: not a .symbi file")])
    _check_nesting(path, text)
    doc = Document(path, text)
    try:
        from lark.exceptions import LarkError

        try:
            tree = _lark().parse(text)
        except LarkError as exc:
            raise _syntax_error(path, text, exc) from None
        builder = _Builder(doc)
        builder.build(tree)
    except DslError:
        raise
    except RecursionError:
        raise DslError([Diagnostic(path, 1, 1, "nested too deeply")]) from None
    except Exception as exc:
        raise DslError([Diagnostic(path, 1, 1, f"cannot parse: {exc}")]) from exc
    if builder.errors:
        raise DslError(builder.errors)
    return doc


def parse_file(path: str) -> Document:
    """Read and parse a file; an unreadable file is a :class:`DslError` too."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise DslError([Diagnostic(path, 1, 1, f"cannot read: {exc.strerror}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DslError([Diagnostic(path, line, 1, "not valid UTF-8")]) from None
    return parse_text(text, path)
