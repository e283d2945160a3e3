"""EventBridge event-pattern matching for the local cloud.

Follows the Amazon EventBridge User Guide:

* "Amazon EventBridge event patterns" (eb-event-patterns.html) and
  "Event pattern syntax" (eb-create-pattern.html)
* "Arrays in Amazon EventBridge event patterns" (eb-event-patterns-arrays.html)
* "Matching null values and empty strings" (eb-event-patterns-null-values.html)
* "Content filtering in Amazon EventBridge event patterns" /
  "Comparison operators for use in event patterns" (eb-create-pattern-operators.html)

Where the guide is silent, behaviour follows aws/event-ruler, the open-source
matcher EventBridge runs (its README and JsonRuleCompiler).

The rules, in short:

* A pattern is an object; every key must match (AND). A nested object descends
  into the event's nested object. A leaf is a non-empty list of alternatives (OR).
* A field missing from the event matches nothing but ``{"exists": false}``.
* If the event value is an array, the field matches when any element matches
  any alternative ("the intersection ... is non-empty"). Arrays of objects are
  searched element by element, so one element must satisfy a nested pattern.
* ``exists`` only sees leaf values: a field holding an object, or an empty
  array, does not "exist".
* Exact numbers compare numerically (event-ruler adds a numeric-equals matcher
  for every number in a pattern), so 5 matches 5.0. true/false/null match only
  themselves; null and "" are different.
* ``anything-but`` matches a value that is present and not excluded. It is
  applied to each array element like every other matcher, so ["a", "b"] passes
  ``{"anything-but": "a"}`` because "b" is not "a" (the SNS guide, same engine:
  it matches ["rugby", "baseball"] "because it contains a value that isn't
  rugby or tennis").
* prefix, suffix, equals-ignore-case, wildcard and cidr match strings only;
  numeric matches JSON numbers only.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

__all__ = ["PatternError", "matches", "validate"]

_OR = "$or"
_STRING_OPS = ("prefix", "suffix", "equals-ignore-case", "wildcard")
_OPERATORS = frozenset(_STRING_OPS + ("anything-but", "numeric", "exists", "cidr"))
_LOWER = ("<", "<=")
_UPPER = (">", ">=")
_COMPARE = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_MISSING = object()


class PatternError(ValueError):
    """The event pattern is malformed."""


# ---------------------------------------------------------------- validation


def validate(pattern: dict) -> None:
    """Raise PatternError if ``pattern`` is not a valid EventBridge event pattern."""
    _check_object(pattern, "pattern", in_or=False)


def _check_object(obj: Any, where: str, in_or: bool) -> None:
    if not isinstance(obj, dict):
        raise PatternError(f"{where}: must be an object, got {_kind(obj)}")
    if not obj:
        raise PatternError(f"{where}: empty objects are not allowed")
    for key, value in obj.items():
        here = f"{where}.{key}"
        if not isinstance(key, str):
            raise PatternError(f"{where}: field names must be strings, got {key!r}")
        if key == _OR:
            _check_or(value, here)
        elif in_or and key in _OPERATORS:
            raise PatternError(f"{here}: {key!r} is an operator, not a field name, inside $or")
        elif isinstance(value, dict):
            _check_object(value, here, in_or)
        elif isinstance(value, list):
            _check_leaf(value, here)
        else:
            raise PatternError(f"{here}: must be an object or a list, got {_kind(value)}")


def _check_or(value: Any, where: str) -> None:
    if not isinstance(value, list) or len(value) < 2:
        raise PatternError(f"{where}: must be a list of at least 2 objects")
    for i, branch in enumerate(value):
        _check_object(branch, f"{where}[{i}]", in_or=True)


def _check_leaf(alternatives: list, where: str) -> None:
    if not alternatives:
        raise PatternError(f"{where}: empty lists are not allowed")
    for i, alt in enumerate(alternatives):
        here = f"{where}[{i}]"
        if isinstance(alt, dict):
            _check_operator(alt, here)
        elif not (alt is None or isinstance(alt, (str, bool, int, float))):
            raise PatternError(f"{here}: must be a string, number, true, false, null or an operator object, got {_kind(alt)}")


def _check_operator(alt: dict, where: str) -> None:
    if len(alt) != 1:
        raise PatternError(f"{where}: an operator object has exactly one key, got {sorted(alt)}")
    (op, arg), = alt.items()
    here = f"{where}.{op}"
    if op in ("prefix", "suffix"):
        if isinstance(arg, dict):
            if list(arg) != ["equals-ignore-case"]:
                raise PatternError(f"{here}: only {{\"equals-ignore-case\": ...}} may be nested, got {sorted(arg)}")
            arg = arg["equals-ignore-case"]
        _need_string(arg, here)
    elif op == "equals-ignore-case":
        _need_string(arg, here)
    elif op == "wildcard":
        _need_string(arg, here)
        _wildcard_regex(arg, here)
    elif op == "anything-but":
        _check_anything_but(arg, here)
    elif op == "numeric":
        _numeric_terms(arg, here)
    elif op == "exists":
        if not isinstance(arg, bool):
            raise PatternError(f"{here}: must be true or false, got {arg!r}")
    elif op == "cidr":
        _need_string(arg, here)
        try:
            ipaddress.ip_network(arg, strict=False)
        except ValueError as e:
            raise PatternError(f"{here}: not a CIDR block: {arg!r} ({e})") from None
    else:
        raise PatternError(f"{where}: unknown operator {op!r}")


def _check_anything_but(arg: Any, where: str) -> None:
    if isinstance(arg, dict):
        if len(arg) != 1 or next(iter(arg)) not in _STRING_OPS:
            raise PatternError(f"{where}: nested object must be one of {list(_STRING_OPS)}, got {sorted(arg)}")
        (op, inner), = arg.items()
        for s in inner if isinstance(inner, list) and inner else [inner]:
            _need_string(s, f"{where}.{op}")
            if op == "wildcard":
                _wildcard_regex(s, f"{where}.{op}")
        return
    values = arg if isinstance(arg, list) else [arg]
    if not values:
        raise PatternError(f"{where}: empty lists are not allowed")
    if all(isinstance(v, str) for v in values) or all(_is_number(v) for v in values):
        return
    raise PatternError(f"{where}: must be a string, a number, or a list of only strings or only numbers, got {arg!r}")


def _numeric_terms(arg: Any, where: str) -> list:
    """Return [(op, number), ...]; the grammar is event-ruler's:
    ["=", n] | ["<" or "<=", n] | [">" or ">=", n] | [">" or ">=", n, "<" or "<=", m]."""
    if not isinstance(arg, list) or len(arg) not in (2, 4):
        raise PatternError(f"{where}: must be a list like [\">\", 0, \"<=\", 5], got {arg!r}")
    terms = list(zip(arg[::2], arg[1::2]))
    for op, num in terms:
        if op not in _COMPARE:
            raise PatternError(f"{where}: unknown comparison {op!r}")
        if not _is_number(num):
            raise PatternError(f"{where}: value of {op!r} must be a number, got {num!r}")
    if len(terms) == 2 and not (terms[0][0] in _UPPER and terms[1][0] in _LOWER):
        raise PatternError(f"{where}: a range is a lower bound (> or >=) then an upper bound (< or <=), got {arg!r}")
    return terms


def _wildcard_regex(text: str, where: str = "wildcard") -> re.Pattern:
    """'*' is any run of characters; '\\*' a literal star, '\\\\' a literal backslash."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            nxt = text[i + 1 : i + 2]
            if nxt not in ("*", "\\"):
                raise PatternError(f"{where}: a backslash may only escape '*' or '\\' in {text!r}")
            out.append(re.escape(nxt))
            i += 2
            continue
        if c == "*":
            if text[i + 1 : i + 2] == "*":
                raise PatternError(f"{where}: consecutive '*' are not allowed in {text!r}")
            out.append(".*")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _need_string(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise PatternError(f"{where}: must be a string, got {_kind(value)}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _kind(v: Any) -> str:
    return "null" if v is None else type(v).__name__


# ------------------------------------------------------------------ matching


def matches(pattern: dict, event: dict) -> bool:
    """True if ``event`` matches the EventBridge event ``pattern``.

    Raises PatternError if the pattern is malformed."""
    validate(pattern)
    if not isinstance(event, dict):
        raise TypeError(f"event must be a dict, got {_kind(event)}")
    return _match_object(pattern, event)


def _match_object(pattern: dict, obj: dict) -> bool:
    for key, sub in pattern.items():
        if key == _OR:
            ok = any(_match_object(branch, obj) for branch in sub)
        elif isinstance(sub, dict):
            # Descend into each object found here; if there is none, only
            # absence tests ({"exists": false}) can still match.
            found = [v for v in _flatten(obj.get(key)) if isinstance(v, dict)] or [{}]
            ok = any(_match_object(sub, v) for v in found)
        else:
            ok = _match_leaf(sub, obj.get(key, _MISSING))
        if not ok:
            return False
    return True


def _match_leaf(alternatives: list, value: Any) -> bool:
    # Leaf values only: objects are not leaves, arrays contribute their elements.
    leaves = [] if value is _MISSING else [v for v in _flatten(value) if not isinstance(v, dict)]
    for alt in alternatives:
        if isinstance(alt, dict) and "exists" in alt:
            if bool(leaves) == alt["exists"]:
                return True
        elif any(_match_value(alt, v) for v in leaves):
            return True
    return False


def _flatten(value: Any) -> list:
    if isinstance(value, list):
        return [x for item in value for x in _flatten(item)]
    return [value]


def _match_value(alt: Any, v: Any) -> bool:
    if not isinstance(alt, dict):
        return _equal(alt, v)
    (op, arg), = alt.items()
    if op == "anything-but":
        return not _excluded(arg, v)
    if op == "numeric":
        return _is_number(v) and all(_COMPARE[o](v, n) for o, n in _numeric_terms(arg, "numeric"))
    if op == "cidr":
        return _in_cidr(arg, v)
    return _string_op(op, arg, v)


def _string_op(op: str, arg: Any, v: Any) -> bool:
    if not isinstance(v, str):
        return False
    fold = isinstance(arg, dict)  # {"prefix": {"equals-ignore-case": "..."}}
    if fold:
        arg = arg["equals-ignore-case"]
    if op == "equals-ignore-case":
        return v.casefold() == arg.casefold()
    if op == "wildcard":
        return _wildcard_regex(arg).fullmatch(v) is not None
    if fold:
        v, arg = v.casefold(), arg.casefold()
    return v.startswith(arg) if op == "prefix" else v.endswith(arg)


def _excluded(arg: Any, v: Any) -> bool:
    if isinstance(arg, dict):  # {"prefix"|"suffix"|"equals-ignore-case"|"wildcard": str or [str]}
        (op, inner), = arg.items()
        return any(_string_op(op, s, v) for s in (inner if isinstance(inner, list) else [inner]))
    return any(_equal(x, v) for x in (arg if isinstance(arg, list) else [arg]))


def _equal(alt: Any, v: Any) -> bool:
    if _is_number(alt):
        return _is_number(v) and alt == v  # 5 == 5.0
    if alt is None or isinstance(alt, bool):
        return v is alt
    return isinstance(v, str) and v == alt


def _in_cidr(block: str, v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        return ipaddress.ip_address(v) in ipaddress.ip_network(block, strict=False)
    except ValueError:
        return False
