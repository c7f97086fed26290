"""``--key=value`` overrides for the config variables at the top of a training script (nanoGPT style).

    config = configure(globals(), sys.argv[1:])      # then check(config, RULES)

The keys are the script's module-level variables of plain value types, neither ``_private`` nor
``CONSTANT``; ``--help`` prints each with its default and the comment beside it. A value takes the type
of its default: numbers (``--max_iters=1e4`` for an int), ``True`` / ``False`` (also true, 1, no ...),
text as it is, tuples as ``a,b,c`` or a Python literal (numbers in them become numbers); a default of
``None`` takes the type given in ``types``, else a literal or the text. ``None`` / ``none`` unsets a key
whose default is ``None`` or that is ``nullable``. :func:`check` holds each value to its :data:`Rule`.
A wrong key or value is a :class:`ConfigError`: one line on stderr naming the key, the value and what is
allowed, exit status 2 (as argparse), never a traceback.
"""
from __future__ import annotations

import ast
import math
import os
import re
import sys
from typing import Callable

Rule = tuple[Callable[[object], bool], str]      # (is the value allowed?, what is allowed, in words)
KINDS = (int, float, bool, str, tuple, type(None))
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


class ConfigError(SystemExit):
    """A bad ``--key=value``: prints its one-line message to stderr and exits with status 2."""

    def __init__(self, message: str):
        super().__init__(2)
        self.message = message
        print(message, file=sys.stderr, flush=True)

    def __str__(self) -> str:
        return self.message


def _real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def number(low: float = -math.inf, high: float = math.inf, *, low_open: bool = False,
           high_open: bool = False) -> Rule:
    """A finite number in the interval."""
    def ok(v):
        return _real(v) and (low < v if low_open else low <= v) and (v < high if high_open else v <= high)
    ends = ("(" if low_open else "[") + f"{low:g}, {high:g}" + (")" if high_open else "]")
    words = (f"> {low:g}" if low_open else f">= {low:g}") if high == math.inf else f"in {ends}"
    return ok, f"a finite number {words}"


def integer(low: int = 0, high: int | None = None, none: bool = False) -> Rule:
    """An int in [low, high] (None too with ``none``)."""
    return (lambda v: (v is None and none) or (isinstance(v, int) and not isinstance(v, bool) and v >= low
                                              and (high is None or v <= high)),
            (f"an int >= {low}" if high is None else f"an int in [{low}, {high}]") + (" or None" if none else ""))


def choice(*options) -> Rule:
    return (lambda v: v in options), f"one of {', '.join(str(o) for o in options)}"


def subset(options) -> Rule:
    """One or more distinct items of ``options``."""
    return (lambda v: isinstance(v, tuple) and len(v) >= 1 and all(x in options for x in v) and len(set(v)) == len(v),
            f"distinct items of {', '.join(options)}")


def several(rule: Rule) -> Rule:
    """One or more comma-separated values, each allowed by ``rule``."""
    ok, allowed = rule
    return (lambda v: isinstance(v, tuple) and len(v) >= 1 and all(ok(x) for x in v),
            f"one or more comma-separated values, each {allowed}")


def interval(low: float, high: float) -> Rule:
    """A pair (a, b) with low < a <= b <= high."""
    return (lambda v: isinstance(v, tuple) and len(v) == 2 and all(_real(x) and low < x <= high for x in v)
            and v[0] <= v[1], f"two numbers a,b with {low:g} < a <= b <= {high:g}")


def device_rule() -> Rule:
    """auto, cpu, cuda or cuda:N of a device this machine has."""
    def ok(v):
        import torch
        match = re.fullmatch(r"cuda(?::(\d+))?", str(v))
        return v in ("auto", "cpu") or (bool(match) and torch.cuda.is_available()
                                         and int(match.group(1) or 0) < torch.cuda.device_count())
    return ok, "auto, cpu, or cuda / cuda:N of a GPU this machine has (torch.cuda.is_available())"


def check(config: dict, rules: dict[str, Rule]) -> None:
    """Every key of ``rules`` holds a value its rule allows, else a :class:`ConfigError` naming both."""
    for key, (ok, allowed) in rules.items():
        if not ok(config[key]):
            raise ConfigError(f"--{key} must be {allowed}, but got {config[key]!r}")


def given_keys(argv: list[str]) -> set[str]:
    """Keys set on the command line (``--key=value`` items of ``argv``)."""
    return {a[2:].split("=", 1)[0] for a in argv if a.startswith("--") and "=" in a}


def literal(text: str):
    """A Python literal, or the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def convert(key: str, text: str, default, kind: type | None = None, nullable: bool = False):
    """``text`` as the type of ``default`` (or ``kind`` when the default is ``None``)."""
    kind, value = kind or type(default), literal(text)
    if text in ("None", "none"):
        if default is None or nullable:
            return None
        raise ConfigError(f"--{key} must be {'an' if kind is int else 'a'} {kind.__name__}; it cannot be None "
                          f"(default {default!r}), but got {text!r}")
    if kind in (str, type(None)):
        return text if kind is str else value
    if kind is bool and text.lower() in TRUE + FALSE:
        return text.lower() in TRUE
    if kind is tuple:
        value = tuple(value) if isinstance(value, (tuple, list)) else \
            tuple(literal(item.strip()) for item in text.split(",") if item.strip())
        if value:
            return value
    real = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int and real and (isinstance(value, int) or value.is_integer()):
        return int(value)
    if kind is float and (real or text.strip().lower() in ("nan", "inf", "+inf", "-inf", "infinity", "-infinity")):
        return float(value if real else text)          # nan / inf: its key's rule says whether it is allowed
    if kind not in (bool, tuple, int, float) and isinstance(value, kind):
        return value
    expected = {bool: "True or False", tuple: "a non-empty comma-separated list", int: "an int", float: "a float"}
    raise ConfigError(f"--{key} must be {expected.get(kind, f'a {kind.__name__}')} (default {default!r}), "
                      f"but got {text!r}")


def help_text(namespace: dict, keys: list[str]) -> str:
    """Usage, the script docstring's first paragraph, then every key with its default and the comment beside
    it, under the ``# section`` header it follows."""
    path = namespace.get("__file__") or "script.py"
    lines = [f"usage: python {os.path.basename(path)} [--key=value ...]", ""]
    summary = (namespace.get("__doc__") or "").strip().split("\n\n")[0]
    lines += [summary, ""] if summary else []
    lines.append("Every key below takes --key=value; None/none unsets it; tuples take a,b,c.")
    notes, section, source = {}, "", ""
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            source = f.read()
    for line in source.splitlines():
        header = re.match(r"^# ([a-zA-Z][\w /()-]*)$", line.rstrip())
        section = header.group(1) if header else section
        match = re.match(r"^([a-z]\w*) = .*?(?:#\s*(.*))?$", line.rstrip())
        if match and match.group(1) not in notes:
            notes[match.group(1)] = (section, (match.group(2) or "").strip())
    section = None
    for key in keys:
        where, note = notes.get(key, ("", ""))
        if where != section:
            section = where
            lines += ["", f"{where or 'other'}:"]
        lines.append(f"  --{key}={namespace[key]!r}".ljust(36) + (f"  {note}" if note else ""))
    return "\n".join(lines)


def configure(namespace: dict, argv: list[str], types: dict[str, type] | None = None,
              nullable: tuple[str, ...] = ()) -> dict:
    """Apply the ``--key=value`` items of ``argv`` to ``namespace``; return {key: value} of every config key.

    ``types``: the type of keys whose default is ``None``; ``nullable``: keys that take ``None`` besides
    their type. ``--help`` / ``-h`` prints :func:`help_text` and exits with status 0.
    """
    keys = [k for k, v in namespace.items() if not k.startswith("_") and not k.isupper() and isinstance(v, KINDS)]
    if any(arg in ("--help", "-h", "help") for arg in argv):
        print(help_text(namespace, keys))
        sys.exit(0)
    for arg in argv:
        if not arg.startswith("--") or "=" not in arg:
            raise ConfigError(f"arguments must look like --key=value (or --help), but got {arg!r}")
        key, text = arg[2:].split("=", 1)
        if key not in keys:
            raise ConfigError(f"unknown config key {key!r} in {arg!r}; known keys: {', '.join(sorted(keys))} "
                              "(--help lists them with their defaults)")
        namespace[key] = convert(key, text, namespace[key], (types or {}).get(key), key in nullable)
    return {k: namespace[k] for k in keys}
