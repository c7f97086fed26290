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
(``--mixup=none``); other keys refuse it. A wrong key or value is a
``SystemExit`` whose message names the key and the value, never a traceback.
"""
from __future__ import annotations

import ast
import os
import re
import sys

NONE = ("None", "none")
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


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
        return SystemExit(f"--{key} must be {expected} (default {default!r}), but got {text!r}")

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
            raise SystemExit(f"arguments must look like --key=value (or --help), but got {arg!r}")
        key, text = arg[2:].split("=", 1)
        if key not in keys:
            raise SystemExit(f"unknown config key {key!r} in {arg!r}; known keys: {', '.join(sorted(keys))} "
                             "(--help lists them with their defaults)")
        namespace[key] = convert(key, text, namespace[key], types.get(key), key in nullable)
    return {k: namespace[k] for k in keys}
