"""``--key=value`` overrides for the config variables at the top of a training script (nanoGPT style).

    config = configure(globals(), sys.argv[1:])

Only keys that already exist as config variables are accepted; ``--help`` (or ``-h``) prints every key
with its default and the comment next to it, then exits. A value takes the type of its default:

- ``int`` / ``float`` / ``bool``: a number (``--lr=3e-4``; an int is fine for a float, ``--max_iters=1e4``
  for an int), ``True`` / ``False`` (also ``true``, ``1``, ``no`` ...);
- ``str``: the text as it is (``--device=cuda``);
- ``tuple``: comma-separated items or a Python literal (``--transforms=zoom,affine``,
  ``--transforms=identity``, ``--crop_scale=(0.5,1)``); numbers in the items become numbers;
- a default of ``None``: the type given in ``types`` (``configure(..., types={"depth": int})``), else a
  Python literal or the text.

``None`` / ``none`` sets a key whose default is ``None``, or one listed in ``nullable``, to ``None``
(``--mixup=none``); other keys refuse it. A wrong key or value is a :class:`ConfigError`: one line on
stderr naming the key, the value and what is allowed, exit status 2 (as argparse), never a traceback.
:func:`check` holds values to their domains (a :data:`Rule` per key) before any work starts.
"""
from __future__ import annotations

import ast
import math
import os
import re
import sys
from typing import Callable

NONE = ("None", "none")
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


class ConfigError(SystemExit):
    """A bad ``--key=value``: prints its one-line message to stderr and exits with status 2."""

    def __init__(self, message: str):
        super().__init__(2)
        self.message = message
        print(message, file=sys.stderr, flush=True)

    def __str__(self) -> str:
        return self.message


Rule = tuple[Callable[[object], bool], str]      # (is the value allowed?, what is allowed, in words)


def number(low: float = -math.inf, high: float = math.inf, *, low_open: bool = False, high_open: bool = False,
           none: bool = False) -> Rule:
    """A finite number in the interval (None too with ``none``)."""
    def ok(v):
        if v is None:
            return none
        return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                and (low < v if low_open else low <= v) and (v < high if high_open else v <= high))
    ends = ("(" if low_open else "[") + f"{low:g}, {high:g}" + (")" if high_open else "]")
    words = (f"> {low:g}" if low_open else f">= {low:g}") if high == math.inf else f"in {ends}"
    return ok, f"a finite number {words}" + (" or None" if none else "")


def integer(low: int = 0, high: int | None = None, none: bool = False) -> Rule:
    """An int in [low, high] (None too with ``none``)."""
    return (lambda v: (v is None and none) or (isinstance(v, int) and not isinstance(v, bool) and v >= low
                                              and (high is None or v <= high)),
            (f"an int >= {low}" if high is None else f"an int in [{low}, {high}]") + (" or None" if none else ""))


def choice(*options) -> Rule:
    return (lambda v: v in options), f"one of {', '.join(str(o) for o in options)}"


def subset(options, low: int = 1) -> Rule:
    return (lambda v: isinstance(v, tuple) and len(v) >= low and set(v) <= set(options) and len(set(v)) == len(v),
            f"{'' if low else 'none or '}distinct items of {', '.join(options)}")


def interval(low: float, high: float) -> Rule:
    """A pair (a, b) with low < a <= b <= high."""
    return (lambda v: isinstance(v, tuple) and len(v) == 2 and all(number(low, high, low_open=True)[0](x) for x in v)
            and v[0] <= v[1], f"two numbers a,b with {low:g} < a <= b <= {high:g}")


def device_rule() -> Rule:
    """auto, cpu, cuda or cuda:N of a device this machine has."""
    def ok(v):
        if v in ("auto", "cpu"):
            return True
        import torch
        match = re.fullmatch(r"cuda(?::(\d+))?", str(v))
        return bool(match) and torch.cuda.is_available() and int(match.group(1) or 0) < torch.cuda.device_count()
    return ok, "auto, cpu, or cuda / cuda:N of a GPU this machine has (torch.cuda.is_available())"


def check(config: dict, rules: dict[str, Rule]) -> None:
    """Every key of ``rules`` must hold a value its rule allows: else one line naming the key, the value
    and what is allowed (:class:`ConfigError`)."""
    for key, (ok, allowed) in rules.items():
        if not ok(config[key]):
            raise ConfigError(f"--{key} must be {allowed}, but got {config[key]!r}")


def fail(message: str) -> ConfigError:
    """A :class:`ConfigError` for a rule that spans keys (e.g. a width and its heads)."""
    return ConfigError(message)


def config_keys(namespace: dict) -> list[str]:
    """The config variables of a script: module-level names of plain value types, neither private
    (``_name``) nor constants (``UPPER_CASE``)."""
    kinds = (int, float, bool, str, tuple, type(None))
    return [k for k, v in namespace.items() if not k.startswith("_") and not k.isupper() and isinstance(v, kinds)]


def given_keys(argv: list[str]) -> set[str]:
    """Keys set on the command line (``--key=value`` items of ``argv``)."""
    return {a[2:].split("=", 1)[0] for a in argv if a.startswith("--") and "=" in a}


def parse_value(text: str):
    """A Python literal, or the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def convert(key: str, text: str, default, kind: type | None = None, nullable: bool = False):
    """``text`` as the type of ``default`` (or ``kind`` when the default is ``None``)."""
    kind = kind or (type(default) if default is not None else None)

    def wrong(expected: str):
        return ConfigError(f"--{key} must be {expected} (default {default!r}), but got {text!r}")

    if text in NONE:
        if default is None or nullable:
            return None
        raise wrong(f"{'an' if kind is int else 'a'} {kind.__name__}; it cannot be None")

    if kind is None:
        return parse_value(text)
    if kind is str:
        return text
    if kind is bool:
        if text.lower() in TRUE:
            return True
        if text.lower() in FALSE:
            return False
        raise wrong("True or False")
    if kind is tuple:
        value = parse_value(text)
        if isinstance(value, list):
            value = tuple(value)
        if not isinstance(value, tuple):
            value = tuple(parse_value(item.strip()) for item in text.split(",") if item.strip())
        if not value:
            raise wrong("a non-empty comma-separated list")
        return value
    value = parse_value(text)
    if kind is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise wrong("an int")
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if text.strip().lower() in ("nan", "inf", "+inf", "-inf", "infinity", "-infinity"):
            return float(text)          # a float: its key's rule says whether it is allowed
        raise wrong("a float")
    if not isinstance(value, kind):
        raise wrong(f"a {kind.__name__}")
    return value


def comments(path: str | None) -> dict[str, tuple[str, str]]:
    """{key: (section header, trailing comment)} of ``key = value  # comment`` lines in ``path``."""
    if not path or not os.path.isfile(path):
        return {}
    found, section = {}, ""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for line in lines:
        header = re.match(r"^# ([a-zA-Z][\w /()-]*)$", line.rstrip())
        if header:
            section = header.group(1)
        match = re.match(r"^([a-z]\w*) = .*?(?:#\s*(.*))?$", line.rstrip())
        if match and match.group(1) not in found:
            found[match.group(1)] = (section, (match.group(2) or "").strip())
    return found


def help_text(namespace: dict, keys: list[str]) -> str:
    """Usage, the script's first docstring line, then every key with its default and comment."""
    path = namespace.get("__file__")
    summary = (namespace.get("__doc__") or "").strip().split("\n\n")[0]     # the docstring's first paragraph
    notes = comments(path)
    lines = [f"usage: python {os.path.basename(path or 'script.py')} [--key=value ...]", ""]
    if summary:
        lines += [summary, ""]
    lines.append("Every key below takes --key=value; None/none unsets it; tuples take a,b,c.")
    section = None
    for key in keys:
        where, note = notes.get(key, ("", ""))
        if where != section:
            section = where
            lines += ["", f"{where}:" if where else "other:"]
        lines.append(f"  --{key}={namespace[key]!r}".ljust(36) + (f"  {note}" if note else ""))
    return "\n".join(lines)


def configure(namespace: dict, argv: list[str], types: dict[str, type] | None = None,
              nullable: tuple[str, ...] = ()) -> dict:
    """Apply ``--key=value`` items of ``argv`` to ``namespace``; return {key: value} of all config keys.

    ``types`` gives the type of keys whose default is ``None``; keys in ``nullable`` also take
    ``None`` though their default is not ``None``. ``--help`` / ``-h`` prints
    :func:`help_text` and exits with status 0.
    """
    keys = config_keys(namespace)
    types = types or {}
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
        namespace[key] = convert(key, text, namespace[key], types.get(key), key in nullable)
    return {k: namespace[k] for k in keys}
