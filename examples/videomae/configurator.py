"""``--key=value`` overrides for the config variables at the top of a training script (nanoGPT style).

    config = configure(globals(), sys.argv[1:])

Only keys that already exist as config variables are accepted (unknown key -> error listing them);
values are Python literals (``--lr=3e-4``, ``--compile=True``, ``--crop_scale=(0.08,1.0)``); for a
string default the text is taken as it is (``--device=cuda``). A value must keep the type of the default (an int
is fine for a float; anything is fine for a default of ``None``), or be ``None`` (``--mixup=None``).
"""
from __future__ import annotations

import ast


def config_keys(namespace: dict) -> list[str]:
    """The config variables of a script: module-level names of plain value types, not private."""
    kinds = (int, float, bool, str, tuple, type(None))
    return [k for k, v in namespace.items() if not k.startswith("_") and isinstance(v, kinds)]


def parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def configure(namespace: dict, argv: list[str]) -> dict:
    """Apply ``--key=value`` items of ``argv`` to ``namespace``; return {key: value} of all config keys."""
    keys = config_keys(namespace)
    for arg in argv:
        if not arg.startswith("--") or "=" not in arg:
            raise SystemExit(f"arguments must look like --key=value, but got {arg!r}")
        key, text = arg[2:].split("=", 1)
        if key not in keys:
            raise SystemExit(f"unknown config key {key!r}; known keys: {', '.join(sorted(keys))}")
        default = namespace[key]
        value = (None if text == "None" else text) if isinstance(default, str) else parse_value(text)
        if value is not None and default is not None and not isinstance(value, type(default)) \
                and not (isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool)):
            raise SystemExit(f"--{key} must be a {type(default).__name__} like its default {default!r}, "
                             f"but got {value!r}")
        namespace[key] = float(value) if isinstance(default, float) and value is not None else value
    return {k: namespace[k] for k in keys}
