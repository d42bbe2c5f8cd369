# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Calico selector expressions (libcalico-go/lib/selector), parsed into a predicate on labels.

Grammar (lowest precedence first)::

    expr    := and ( "||" and )*
    and     := unary ( "&&" unary )*
    unary   := "!" unary | primary
    primary := "(" expr ")" | "all()" | "global()" | "has(" KEY ")"
             | KEY "==" STRING | KEY "!=" STRING
             | KEY "contains" STRING | KEY "starts" "with" STRING | KEY "ends" "with" STRING
             | KEY "in" "{" [ STRING ( "," STRING )* ] "}"
             | KEY "not" "in" "{" [ STRING ( "," STRING )* ] "}"

STRING is single- or double-quoted. An empty selector selects everything (as Calico).
``!=`` and ``not in`` also match a label that is absent; ``==``, ``in``, ``contains``, ``starts with``
and ``ends with`` need it present (libcalico-go/lib/selector/parser/ast.go: ``LabelContainsValueNode``
and its siblings evaluate to false without the label). ``global()`` evaluates to true as a predicate, as
Calico's ``GlobalNode`` does; it means something only in an entity rule's namespace selector, where the
policy model gives it Calico's meaning (no namespaced endpoint) - :func:`uses_global` finds it.
Errors (:class:`SelectorError`) give the position and what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError

Labels = dict
Predicate = Callable[[Labels], bool]

_KEY_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")
_TOKEN_RE = re.compile(
    r"""\s*(?:
      (?P<op>&&|\|\||==|!=|!|\(|\)|\{|\}|,)
    | (?P<str>"[^"]*"|'[^']*')
    | (?P<badstr>["'])
    | (?P<word>[A-Za-z0-9_][A-Za-z0-9_./-]*)
    | (?P<other>\S)
    )""",
    re.VERBOSE,
)


class SelectorError(L3CalicoError, ValueError):
    def __init__(self, selector: str, position: int, message: str):
        self.selector, self.position = selector, position
        super().__init__(f"{message} at position {position} of {selector!r}")


# Parentheses and '!' nest by recursion (here and in the compiled predicate): bounded, with a named error,
# long before Python's own recursion limit (a selector 2,000 deep used to raise RecursionError).
MAX_DEPTH = 64


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.depth = 0
        self.globals = 0  # how many global() the selector holds
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            match = _TOKEN_RE.match(text, pos)
            if match is None or match.lastgroup is None:  # only trailing blanks left
                break
            kind = match.lastgroup
            start = match.start(kind)
            if kind == "badstr":
                raise SelectorError(text, start, "unterminated string")
            if kind == "other":
                raise SelectorError(text, start, f"unexpected character {match.group(kind)!r}")
            self.tokens.append((kind, match.group(kind), start))
            pos = match.end()
        self.index = 0

    def peek(self) -> tuple[str, str, int]:
        if self.index < len(self.tokens):
            return self.tokens[self.index]
        return ("end", "", len(self.text))

    def take(self) -> tuple[str, str, int]:
        token = self.peek()
        self.index += 1
        return token

    def fail(self, expected: str):
        kind, value, pos = self.peek()
        found = "the end of the selector" if kind == "end" else repr(value)
        raise SelectorError(self.text, pos, f"expected {expected}, found {found}")

    def expect(self, value: str, expected: str | None = None) -> None:
        if self.peek()[1] != value or self.peek()[0] not in ("op", "word"):
            self.fail(expected or repr(value))
        self.index += 1

    def parse(self) -> Predicate:
        if not self.tokens:
            return lambda labels: True
        predicate = self.expr()
        if self.peek()[0] != "end":
            self.fail("'&&', '||' or the end of the selector")
        return predicate

    def expr(self) -> Predicate:
        terms = [self.conj()]
        while self.peek()[:2] == ("op", "||"):
            self.take()
            terms.append(self.conj())
        if len(terms) == 1:
            return terms[0]
        return lambda labels: any(t(labels) for t in terms)

    def conj(self) -> Predicate:
        terms = [self.unary()]
        while self.peek()[:2] == ("op", "&&"):
            self.take()
            terms.append(self.unary())
        if len(terms) == 1:
            return terms[0]
        return lambda labels: all(t(labels) for t in terms)

    def nest(self) -> None:
        """One level deeper ('(' or '!'): refused past MAX_DEPTH."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise SelectorError(self.text, self.peek()[2], f"nested more than {MAX_DEPTH} deep (parentheses and '!' together)")

    def unary(self) -> Predicate:
        if self.peek()[:2] == ("op", "!"):
            self.nest()
            self.take()
            inner = self.unary()
            self.depth -= 1
            return lambda labels: not inner(labels)
        return self.primary()

    def primary(self) -> Predicate:
        kind, value, _position = self.peek()
        if (kind, value) == ("op", "("):
            self.nest()
            self.take()
            inner = self.expr()
            self.expect(")", "')'")
            self.depth -= 1
            return inner
        if kind != "word":
            self.fail("a label name, 'all()', 'global()', 'has(...)', '!' or '('")
        self.take()
        if value in ("all", "has", "global") and self.peek()[:2] == ("op", "("):
            self.take()
            if value in ("all", "global"):
                self.expect(")", f"')' after '{value}('")
                if value == "global":
                    self.globals += 1
                return lambda labels: True
            key = self.key("a label name inside has(...)")
            self.expect(")", "')' after the label name")
            return lambda labels: key in labels
        key = value
        kind, op, _position = self.peek()
        if (kind, op) == ("op", "=="):
            self.take()
            want = self.string()
            return lambda labels: labels.get(key) == want
        if (kind, op) == ("op", "!="):
            self.take()
            want = self.string()
            return lambda labels: labels.get(key) != want
        if (kind, op) == ("word", "contains"):
            self.take()
            part = self.string()
            return lambda labels: key in labels and part in labels[key]
        if (kind, op) in (("word", "starts"), ("word", "ends")):
            self.take()
            self.expect("with", f"'with' after '{op}'")
            part = self.string()
            if op == "starts":
                return lambda labels: key in labels and labels[key].startswith(part)
            return lambda labels: key in labels and labels[key].endswith(part)
        if (kind, op) == ("word", "in"):
            self.take()
            values = self.string_set()
            return lambda labels: key in labels and labels[key] in values
        if (kind, op) == ("word", "not"):
            self.take()
            self.expect("in", "'in' after 'not'")
            values = self.string_set()
            return lambda labels: labels.get(key) not in values
        self.fail(f"'==', '!=', 'in', 'not in', 'contains', 'starts with' or 'ends with' after the label name {key!r}")

    def key(self, expected: str) -> str:
        kind, value, _position = self.peek()
        if kind != "word" or not _KEY_RE.fullmatch(value):
            self.fail(expected)
        self.take()
        return value

    def string(self) -> str:
        kind, value, _position = self.peek()
        if kind != "str":
            self.fail("a quoted string")
        self.take()
        return value[1:-1]

    def string_set(self) -> frozenset:
        self.expect("{", "'{'")
        values = set()
        if self.peek()[:2] != ("op", "}"):
            values.add(self.string())
            while self.peek()[:2] == ("op", ","):
                self.take()
                values.add(self.string())
        self.expect("}", "',' or '}'")
        return frozenset(values)


def parse(selector: str) -> Predicate:
    """Compile a Calico selector into ``predicate(labels) -> bool``; raise :class:`SelectorError`."""
    if not isinstance(selector, str):
        raise SelectorError(str(selector), 0, "a selector must be a string")
    return _Parser(selector).parse()


def matches(selector: str, labels: Labels) -> bool:
    return parse(selector)(labels)


def uses_global(selector: str) -> int:
    """How many ``global()`` terms ``selector`` holds (0: none); raise :class:`SelectorError` if it is bad.

    Calico accepts ``global()`` only as a whole entity-rule namespace selector (libcalico-go's validator:
    "global() can only be used in an EntityRule namespaceSelector", "global() cannot be combined with
    other selectors"); the policy model refuses it anywhere else.
    """
    if not isinstance(selector, str):
        raise SelectorError(str(selector), 0, "a selector must be a string")
    parser = _Parser(selector)
    parser.parse()
    return parser.globals
