"""The GitHub Actions expression language, as far as the generated workflows use it: `${{ }}`
values, `if:` conditions, and the functions they call (the job's status functions and hashFiles
come from the caller)."""

from __future__ import annotations

import math
import re

# docs.github.com "Evaluate expressions in workflows and actions": `||` and `&&` return an operand,
# `==` compares strings ignoring case and coerces mismatched types to numbers (null and '' are 0),
# startsWith/endsWith/contains ignore case; falsy are false, 0, '', null (and NaN).

_GH_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>\|\||&&|==|!=|[!(),.\[\]])"
    r"|(?P<id>[A-Za-z_][A-Za-z0-9_-]*))"
)


def _gh_tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        match = _GH_TOKEN.match(text, pos)
        assert match, f"cannot read {text[pos:]!r}"
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def _gh_number(value):
    if value is None or value == "":
        return 0.0
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def gh_truthy(value) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    return value not in (None, False, 0, "")


def _gh_equal(left, right) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    return _gh_number(left) == _gh_number(right)


_GH_FUNCTIONS = {
    "startswith": lambda a, b: str(a or "").casefold().startswith(str(b or "").casefold()),
    "endswith": lambda a, b: str(a or "").casefold().endswith(str(b or "").casefold()),
    "contains": lambda a, b: str(b or "").casefold() in str(a or "").casefold(),
    "format": lambda f, *args: re.sub(r"\{(\d+)\}", lambda m: _gh_str(args[int(m[1])]), f),
}


def gh_eval(expression: str, context: dict, functions: dict | None = None):
    """The value of an expression (without `${{ }}`); `functions` adds the job's status and
    hashFiles functions to the built-in ones."""
    known = {**_GH_FUNCTIONS, **{name.lower(): f for name, f in (functions or {}).items()}}
    tokens = _gh_tokens(expression)
    pos = 0

    def peek(value=None):
        if pos < len(tokens) and (value is None or tokens[pos][1] == value):
            return tokens[pos]
        return None

    def take(value=None):
        nonlocal pos
        token = peek(value)
        assert token, f"expected {value!r} at {pos} in {expression!r}"
        pos += 1
        return token

    def primary():
        kind, text = take()
        if text == "(":
            value = either()
            take(")")
            return value
        if text == "!":
            return not gh_truthy(primary())
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text)
        if text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        if peek("("):
            take("(")
            args = []
            while not peek(")"):
                args.append(either())
                if peek(","):
                    take(",")
            take(")")
            return known[text.lower()](*args)
        value = context.get(text)
        while peek(".") or peek("["):
            if take()[1] == ".":
                key = take()[1]
            else:
                key = either()
                take("]")
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def comparison():
        left = primary()
        while peek("==") or peek("!="):
            op = take()[1]
            equal = _gh_equal(left, primary())
            left = equal if op == "==" else not equal
        return left

    def conjunction():
        left = comparison()
        while peek("&&"):
            take()
            right = comparison()
            left = right if gh_truthy(left) else left
        return left

    def either():
        left = conjunction()
        while peek("||"):
            take()
            right = conjunction()
            left = left if gh_truthy(left) else right
        return left

    value = either()
    assert pos == len(tokens), f"unread tokens in {expression!r}"
    return value


def _gh_str(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def condition(test) -> str:
    """A job's or step's `if:` as GitHub evaluates it: `${{ }}` optional, and `success() &&`
    implied unless a status function is named."""
    if test is None:
        return "success()"
    expression = str(test).strip()
    if expression.startswith("${{") and expression.endswith("}}"):
        expression = expression[3:-2]
    if not re.search(r"\b(success|failure|always|cancelled)\s*\(", expression):
        expression = f"success() && ({expression})"
    return expression


def gh_render(text, context: dict, functions: dict | None = None) -> str:
    """A workflow value with its `${{ }}` expressions evaluated, as GitHub passes it on."""
    return re.sub(
        r"\$\{\{(.*?)\}\}", lambda m: _gh_str(gh_eval(m[1], context, functions)), str(text)
    )


def glob_regex(pattern: str) -> re.Pattern:
    """@actions/glob, as hashFiles() uses it: `**` any directories, `*` within one."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")
