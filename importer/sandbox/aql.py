"""A parser for the subset of AQL (Assets Query Language) that the sandbox answers.

Grammar (keywords and field names are case-insensitive, as Cloud AQL is documented to be)::

    query      := or_expr EOF
    or_expr    := and_expr ("OR" and_expr)*
    and_expr   := primary ("AND" primary)*
    primary    := "(" or_expr ")" | comparison
    comparison := field "=" value | field "LIKE" value | field "IN" "(" value ("," value)* ")"
    field      := WORD | STRING
    value      := WORD | STRING

``STRING`` is delimited by double quotes; inside it ``\\"`` is a quote and ``\\\\`` a backslash
(the documented rule). Any other backslash sequence, an unterminated string and a single quote
outside a string are syntax errors: the reference notes document double quotes only, so the
sandbox refuses what it cannot vouch for instead of guessing. ``WORD`` is a run of characters
other than whitespace, quotes, parentheses, commas and operator characters. Operators AQL has
but the sandbox does not (``!=``, ``<``, ``NOT IN``, ``HAVING``, functions, dot notation...)
are syntax errors too, so a client never relies on behaviour nobody has simulated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["And", "AqlSyntaxError", "Comparison", "Node", "Or", "parse_aql", "quote_aql"]

_OPERATOR_CHARS = "=!<>~"
_WORD_STOP = set("()\",'" + _OPERATOR_CHARS)
_KEYWORDS = {"and", "or", "in", "not", "like", "is", "having", "order", "by"}


class AqlSyntaxError(ValueError):
    """The query is not valid AQL (or uses AQL the sandbox does not simulate)."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """``field op value(s)``; ``field`` is as written (case preserved), values unescaped."""

    field: str
    op: Literal["=", "IN", "LIKE"]
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class And:
    """All of ``items`` hold."""

    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Any of ``items`` holds."""

    items: tuple[Node, ...]


Node = Comparison | And | Or


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Literal["word", "string", "lparen", "rparen", "comma", "op", "end"]
    text: str
    pos: int


def quote_aql(value: str) -> str:
    """Quote ``value`` as an AQL string literal (escape backslash and double quote)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_aql(text: str) -> Node:
    """Parse ``text`` into a tree; raises ``AqlSyntaxError`` with a position on any error."""
    tokens = _tokenize(text)
    if tokens[0].kind == "end":
        raise AqlSyntaxError("The AQL query is empty")
    parser = _Parser(tokens)
    node = parser.or_expr()
    parser.expect("end", "end of query")
    return node


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char in "(),":
            kind: Literal["lparen", "rparen", "comma"] = (
                "lparen" if char == "(" else "rparen" if char == ")" else "comma"
            )
            tokens.append(_Token(kind, char, i))
            i += 1
        elif char == '"':
            value, end = _read_string(text, i)
            tokens.append(_Token("string", value, i))
            i = end
        elif char == "'":
            raise AqlSyntaxError(
                f"Unexpected single quote at position {i}: AQL strings are delimited by double quotes"
            )
        elif char in _OPERATOR_CHARS:
            op = text[i : i + 2] if text[i : i + 2] in ("!=", "<=", ">=", "==") else char
            tokens.append(_Token("op", op, i))
            i += len(op)
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in _WORD_STOP:
                i += 1
            tokens.append(_Token("word", text[start:i], start))
    tokens.append(_Token("end", "", n))
    return tokens


def _read_string(text: str, start: int) -> tuple[str, int]:
    """Read a double-quoted string starting at ``start``; return (value, index after it)."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            if i + 1 >= len(text):
                break
            escaped = text[i + 1]
            if escaped not in ('"', "\\"):
                raise AqlSyntaxError(
                    f'Unsupported escape sequence \\{escaped} at position {i}: only \\" and \\\\ are allowed'
                )
            out.append(escaped)
            i += 2
        elif char == '"':
            return "".join(out), i + 1
        else:
            out.append(char)
            i += 1
    raise AqlSyntaxError(f"Unterminated string starting at position {start}")


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens
        self._i = 0

    def peek(self) -> _Token:
        return self._tokens[self._i]

    def take(self) -> _Token:
        token = self._tokens[self._i]
        self._i += 1
        return token

    def expect(self, kind: str, what: str) -> _Token:
        token = self.take()
        if token.kind != kind:
            raise AqlSyntaxError(f"Expected {what} at position {token.pos}, found {_describe(token)}")
        return token

    def at_keyword(self, keyword: str) -> bool:
        token = self.peek()
        return token.kind == "word" and token.text.lower() == keyword

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.at_keyword("or"):
            self.take()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Node:
        items = [self.primary()]
        while self.at_keyword("and"):
            self.take()
            items.append(self.primary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def primary(self) -> Node:
        if self.peek().kind == "lparen":
            self.take()
            node = self.or_expr()
            self.expect("rparen", "')'")
            return node
        return self.comparison()

    def comparison(self) -> Comparison:
        token = self.take()
        if token.kind not in ("word", "string") or (token.kind == "word" and token.text.lower() in _KEYWORDS):
            raise AqlSyntaxError(f"Expected an attribute at position {token.pos}, found {_describe(token)}")
        field = token.text
        op_token = self.take()
        if op_token.kind == "op" and op_token.text == "=":
            return Comparison(field, "=", (self.value(),))
        if op_token.kind == "word" and op_token.text.lower() == "like":
            return Comparison(field, "LIKE", (self.value(),))
        if op_token.kind == "word" and op_token.text.lower() == "in":
            self.expect("lparen", "'(' after IN")
            values = [self.value()]
            while self.peek().kind == "comma":
                self.take()
                values.append(self.value())
            self.expect("rparen", "')' closing the IN list")
            return Comparison(field, "IN", tuple(values))
        raise AqlSyntaxError(
            f"Unsupported or missing operator at position {op_token.pos}: {_describe(op_token)}"
            " (the sandbox supports =, IN and LIKE)"
        )

    def value(self) -> str:
        token = self.take()
        if token.kind not in ("word", "string"):
            raise AqlSyntaxError(f"Expected a value at position {token.pos}, found {_describe(token)}")
        if token.kind == "word" and self.peek().kind == "lparen":
            raise AqlSyntaxError(f"AQL functions are not supported by the sandbox (position {token.pos})")
        return token.text


def _describe(token: _Token) -> str:
    return "end of query" if token.kind == "end" else repr(token.text)
