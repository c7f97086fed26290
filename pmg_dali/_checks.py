"""Argument checks shared by the package: TypeError for a wrong type, ValueError for a wrong value,
every message ``"`name` must be ..., but got <value>"``."""
from __future__ import annotations

import math
import numbers
import os
import sys

import torch

__all__ = ["check_int", "check_rank", "check_bool", "check_number", "check_choice", "check_range", "check_generator",
           "check_seed", "check_device", "env_flag", "MAX_SEED"]

# Seeds reach torch.Generator.manual_seed (< 2**64) as seed + epoch: half the range keeps room for epochs.
MAX_SEED = 2 ** 63 - 1


def _check_bounds(name: str, value, low, high) -> None:
    """``low <= value <= high`` (a None bound is not checked); NaN is out of every range."""
    if low is not None and high is not None:
        if not low <= value <= high:
            raise ValueError(f"`{name}` must be in [{low}, {high}], but got {value!r}")
    elif low is not None and not value >= low:
        raise ValueError(f"`{name}` must be >= {low}, but got {value!r}")
    elif high is not None and not value <= high:
        raise ValueError(f"`{name}` must be <= {high}, but got {value!r}")


def check_int(name: str, value, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int: any ``numbers.Integral`` (Python or NumPy integers) but a bool, within
    ``[low, high]`` (a None bound is open)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"`{name}` must be an int, but got {value!r}")
    _check_bounds(name, value, low, high)
    return int(value)


def check_rank(name: str, value, size_name: str, size: int) -> int:
    """``value`` as an int in ``[0, size)``: one of ``size`` ranks / shards (``size_name`` names the count)."""
    value = check_int(name, value, 0)
    if value >= size:
        raise ValueError(f"`{name}` must be in [0, {size - 1}] ({size_name} {size}), but got {value}")
    return value


def check_number(name: str, value, low: float | None = None, high: float | None = None) -> float:
    """``value`` as a finite float: any ``numbers.Real`` but a bool, not NaN or infinite, within
    ``[low, high]`` (a None bound is open)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"`{name}` must be a number, but got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number, but got {value!r}")
    _check_bounds(name, value, low, high)
    return float(value)


def check_bool(name: str, value) -> bool:
    """``value`` must be a bool (not 0 / 1)."""
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool, but got {value!r}")
    return value


def check_choice(name: str, value, choices: tuple):
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}, but got {value!r}")
    return value


def check_range(name: str, value, low: float, high: float = math.inf, *,
                open_low: bool = False) -> tuple[float, float]:
    """``value`` as a pair of finite floats ``(min, max)`` with ``low <= min <= max <= high``
    (``low < min`` with ``open_low``)."""
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)):
        raise TypeError(f"`{name}` must be a pair of numbers (min, max), but got {value!r}")
    a, b = float(value[0]), float(value[1])
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"`{name}` must be a pair of finite numbers (min, max), but got {value!r}")
    if not ((low < a if open_low else low <= a) and a <= b <= high):
        rule = f"{low} {'<' if open_low else '<='} min <= max" + (f" <= {high}" if high != math.inf else "")
        raise ValueError(f"`{name}` must satisfy {rule}, but got {value!r}")
    return (a, b)


def check_generator(generator) -> torch.Generator | None:
    """``generator`` must be a ``torch.Generator`` or None."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator or None, but got {type(generator).__name__}")
    return generator


def check_seed(value, name: str = "seed") -> int:
    """``value`` as an int seed in ``[0, MAX_SEED]``."""
    return check_int(name, value, 0, MAX_SEED)


def parse_device(value, name: str = "device") -> torch.device:
    """``value`` (a ``torch.device``, a string such as ``"cpu"`` / ``"cuda:1"``, or a CUDA index) as a
    ``torch.device``, whether or not this machine has it; a string torch cannot parse is a ValueError
    naming the argument."""
    if isinstance(value, torch.device):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"`{name}` must be a torch.device, a str or an int, but got {type(value).__name__}")
    try:
        return torch.device(value)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"`{name}` must name a device such as 'cpu', 'cuda' or 'cuda:1', "
                         f"but got {value!r}") from err


def check_device(value, name: str = "device") -> torch.device:
    """:func:`parse_device`, and a CUDA device this machine does not have is a ValueError naming the
    argument."""
    value = parse_device(value, name)
    if value.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"`{name}` is {str(value)!r} but CUDA is not available here (no GPU, or a "
                             f"CPU-only torch); pass device='cpu'")
        if value.index is not None and value.index >= torch.cuda.device_count():
            raise ValueError(f"`{name}` must be one of the {torch.cuda.device_count()} CUDA devices, "
                             f"but got {str(value)!r}")
    return value


TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def env_flag(name: str, default: bool) -> bool:
    """The boolean environment variable ``name``: 1 / true / yes / on or 0 / false / no / off (any case,
    spaces ignored); unset or empty: ``default``; anything else is a ValueError naming it."""
    text = os.environ.get(name, "").strip().lower()
    if not text:
        return default
    if text in TRUE_WORDS + FALSE_WORDS:
        return text in TRUE_WORDS
    raise ValueError(f"the environment variable {name} must be one of {TRUE_WORDS + FALSE_WORDS} (or unset), "
                     f"but got {os.environ[name]!r}")


def check_motion_program(program, name: str = "program") -> None:
    """``program`` is a :class:`~pmg_dali.MotionProgram`. The class is looked up in its loaded module
    (:mod:`pmg_dali.program`; not loaded: no program exists), since the modules ``MotionProgram`` itself
    uses (its ``flow`` / ``track``) cannot import it."""
    cls = getattr(sys.modules.get("pmg_dali.program"), "MotionProgram", None)
    if cls is None or not isinstance(program, cls):
        raise TypeError(f"`{name}` must be a MotionProgram, but got {type(program).__name__}")
