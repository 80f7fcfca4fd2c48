"""A small subset of CEL, enough for Dapr routing rules over the variable ``event``.

Supported: literals (numbers, strings, ``true``/``false``/``null``, lists), field access
``event.data.kind`` and indexing ``event["type"]``, ``== != < <= > >= in``, ``&& || !``,
``+ -``, parentheses, ``has(event.x)``, ``size(x)`` and the string methods
``startsWith``, ``endsWith``, ``contains``, ``matches``. A missing field is an error,
as in CEL; :class:`CelError` makes the delivery fail (DLQ or retry), like daprd.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["CelError", "compile_expression", "evaluate"]


class CelError(ValueError):
    """The expression cannot be parsed or evaluated."""


_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.\d+|\d+)|(?P<str>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')"
    r"|(?P<op>&&|\|\||==|!=|<=|>=|[<>!().\[\],+\-])|(?P<id>[A-Za-z_][A-Za-z0-9_]*))"
)

Node = Callable[[Mapping[str, Any]], Any]
_MISSING = object()


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise CelError(f"unexpected character at {pos} in {text!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    out.append(("end", ""))
    return out


def _field(value: Any, name: Any) -> Any:
    if isinstance(value, Mapping):
        if name in value:
            return value[name]
        raise CelError(f"no such key: {name}")
    if isinstance(value, list) and isinstance(name, int):
        try:
            return value[name]
        except IndexError:
            raise CelError(f"index out of range: {name}") from None
    raise CelError(f"cannot select {name!r} from {type(value).__name__}")


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == "in":
        if isinstance(right, Mapping | list | str):
            return left in right
        raise CelError("'in' needs a list, map or string")
    try:
        if op == "<":
            return bool(left < right)
        if op == "<=":
            return bool(left <= right)
        if op == ">":
            return bool(left > right)
        return bool(left >= right)
    except TypeError:
        raise CelError(f"cannot compare {left!r} {op} {right!r}") from None


_METHODS: dict[str, Callable[[Any, list[Any]], Any]] = {
    "startsWith": lambda s, a: str(s).startswith(a[0]),
    "endsWith": lambda s, a: str(s).endswith(a[0]),
    "contains": lambda s, a: a[0] in str(s),
    "matches": lambda s, a: re.search(a[0], str(s)) is not None,
    "size": lambda s, a: len(s),
}


def _binary(left: Node, right: Node, fn: Callable[[Any, Any], Any], *, lazy: str = "") -> Node:
    if lazy == "or":
        return lambda e: bool(left(e)) or bool(right(e))
    if lazy == "and":
        return lambda e: bool(left(e)) and bool(right(e))
    return lambda e: fn(left(e), right(e))


def _method(target: Node, fn: Callable[[Any, list[Any]], Any], args: list[Node]) -> Node:
    return lambda e: fn(target(e), [a(e) for a in args])


def _select(target: Node, name: str) -> Node:
    return lambda e: _field(target(e), name)


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.toks[self.i]

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.toks[self.i]
        if value is not None and tok[1] != value:
            raise CelError(f"expected {value!r}, found {tok[1]!r}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.or_()
        if self.peek()[0] != "end":
            raise CelError(f"unexpected {self.peek()[1]!r}")
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.peek()[1] == "||":
            self.take()
            node = _binary(node, self.and_(), lambda x, y: bool(x) or bool(y), lazy="or")
        return node

    def and_(self) -> Node:
        node = self.unary()
        while self.peek()[1] == "&&":
            self.take()
            node = _binary(node, self.unary(), lambda x, y: bool(x) and bool(y), lazy="and")
        return node

    def unary(self) -> Node:
        if self.peek()[1] == "!":
            self.take()
            inner = self.unary()
            return lambda e: not inner(e)
        return self.comparison()

    def comparison(self) -> Node:
        left = self.additive()
        op = self.peek()[1]
        if op in ("==", "!=", "<", "<=", ">", ">=", "in"):
            self.take()
            right = self.additive()
            return lambda e: _compare(op, left(e), right(e))
        return left

    def additive(self) -> Node:
        node = self.postfix()
        while self.peek()[1] in ("+", "-"):
            op = self.take()[1]
            right = self.postfix()
            if op == "+":
                node = _binary(node, right, lambda x, y: x + y)
            else:
                node = _binary(node, right, lambda x, y: x - y)
        return node

    def args(self) -> list[Node]:
        self.take("(")
        out: list[Node] = []
        while self.peek()[1] != ")":
            out.append(self.or_())
            if self.peek()[1] == ",":
                self.take()
        self.take(")")
        return out

    def postfix(self) -> Node:
        node = self.primary()
        while self.peek()[1] in (".", "["):
            if self.take()[1] == ".":
                name = self.take()[1]
                if self.peek()[1] == "(":
                    if name not in _METHODS:
                        raise CelError(f"unknown method {name!r}")
                    node = _method(node, _METHODS[name], self.args())
                else:
                    node = _select(node, name)
            else:
                index = self.or_()
                self.take("]")
                node = _binary(node, index, _field)
        return node

    def primary(self) -> Node:
        kind, text = self.take()
        if kind == "num":
            value: Any = float(text) if "." in text else int(text)
            return lambda e: value
        if kind == "str":
            literal = bytes(text[1:-1], "utf-8").decode("unicode_escape")
            return lambda e: literal
        if text == "(":
            node = self.or_()
            self.take(")")
            return node
        if text == "[":
            items: list[Node] = []
            while self.peek()[1] != "]":
                items.append(self.or_())
                if self.peek()[1] == ",":
                    self.take()
            self.take("]")
            return lambda e: [x(e) for x in items]
        if text == "-" and self.peek()[0] == "num":
            inner = self.primary()
            return lambda e: -inner(e)
        if kind != "id":
            raise CelError(f"unexpected {text!r}")
        return self.identifier(text)

    def identifier(self, text: str) -> Node:
        if text in ("true", "false"):
            flag = text == "true"
            return lambda e: flag
        if text == "null":
            return lambda e: None
        if text == "has":
            return self.has()
        if text == "size":
            (arg,) = self.args()
            return lambda e: len(arg(e))
        name = text
        return lambda e: _field(e, name)

    def has(self) -> Node:
        self.take("(")
        target = self.postfix_without_last()
        self.take(")")
        return target

    def postfix_without_last(self) -> Node:
        """``has(a.b.c)``: evaluate ``a.b`` and test that ``c`` is present."""
        kind, text = self.take()
        if kind != "id":
            raise CelError("has() needs a field selection")
        path = [text]
        while self.peek()[1] == ".":
            self.take()
            path.append(self.take()[1])
        if len(path) < 2:
            raise CelError("has() needs a field selection")

        def node(env: Mapping[str, Any]) -> bool:
            value: Any = _field(env, path[0])
            for part in path[1:-1]:
                value = _field(value, part)
            return isinstance(value, Mapping) and path[-1] in value

        return node


def compile_expression(text: str) -> Node:
    """Parse ``text`` once; the result evaluates against ``{"event": ...}``."""
    return _Parser(text).parse()


def evaluate(text: str, event: Mapping[str, Any]) -> bool:
    """True/False for a routing rule; :class:`CelError` on errors or non-boolean results."""
    result = compile_expression(text)({"event": event})
    if not isinstance(result, bool):
        raise CelError(f"rule {text!r} did not return a boolean")
    return result
