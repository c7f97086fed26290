"""pmg_dali._checks: the argument checks every module shares (types -> TypeError, values ->
ValueError, messages "`name` must be ..., but got <value>")."""
import math

import numpy as np
import pytest
import torch

from pmg_dali._checks import (env_flag, check_bool, check_choice, check_generator, check_int, check_number, check_range,
                              check_rank)


def test_check_int_accepts_integral_and_returns_int():
    for value in (3, np.int64(3), np.uint8(3), np.int32(3)):
        out = check_int("n", value, 0)
        assert out == 3 and type(out) is int
    assert check_int("n", -5) == -5                                    # no bounds


@pytest.mark.parametrize("value", [True, 3.0, "3", None, torch.tensor(3), np.float64(3)])
def test_check_int_rejects_non_ints(value):
    with pytest.raises(TypeError, match="`n` must be an int, but got "):
        check_int("n", value, 0)


def test_check_int_bounds():
    with pytest.raises(ValueError, match="`n` must be >= 1, but got 0"):
        check_int("n", 0, 1)
    with pytest.raises(ValueError, match="`n` must be <= 4, but got 5"):
        check_int("n", 5, high=4)
    with pytest.raises(ValueError, match=r"`n` must be in \[1, 4\], but got np.int64\(5\)"):
        check_int("n", np.int64(5), 1, 4)
    assert check_int("n", 1, 1, 4) == 1 and check_int("n", 4, 1, 4) == 4


def test_check_number():
    assert check_number("x", 1) == 1.0 and type(check_number("x", np.float32(0.5))) is float
    with pytest.raises(TypeError, match="`x` must be a number, but got False"):
        check_number("x", False)
    with pytest.raises(TypeError, match="`x` must be a number, but got '1'"):
        check_number("x", "1")
    with pytest.raises(ValueError, match=r"`x` must be in \[0, 1\], but got 1.5"):
        check_number("x", 1.5, 0, 1)
    for value in (math.nan, math.inf, -math.inf):      # with or without bounds
        with pytest.raises(ValueError, match=f"`x` must be a finite number, but got {value}"):
            check_number("x", value, 0, 1)
        with pytest.raises(ValueError, match=f"`x` must be a finite number, but got {value}"):
            check_number("x", value)


def test_check_bool_choice_generator():
    assert check_bool("flag", False) is False
    with pytest.raises(TypeError, match="`flag` must be a bool, but got 1"):
        check_bool("flag", 1)
    assert check_choice("mode", "a", ("a", "b")) == "a"
    with pytest.raises(ValueError, match=r"`mode` must be one of \('a', 'b'\), but got 'c'"):
        check_choice("mode", "c", ("a", "b"))
    g = torch.Generator()
    assert check_generator(g) is g and check_generator(None) is None
    with pytest.raises(TypeError, match="`generator` must be a torch.Generator or None, but got Generator"):
        check_generator(np.random.default_rng(0))


def test_check_range():
    assert check_range("r", [1, 2], 0, 3) == (1.0, 2.0)
    assert check_range("r", (0, 0), 0, 1) == (0.0, 0.0)
    with pytest.raises(TypeError, match=r"`r` must be a pair of numbers \(min, max\), but got 0.5"):
        check_range("r", 0.5, 0, 1)
    with pytest.raises(TypeError, match=r"`r` must be a pair of numbers \(min, max\), but got \(1, 2, 3\)"):
        check_range("r", (1, 2, 3), 0, 4)
    with pytest.raises(ValueError, match=r"`r` must satisfy 0 <= min <= max <= 1, but got \(0.8, 0.5\)"):
        check_range("r", (0.8, 0.5), 0, 1)
    with pytest.raises(ValueError, match=r"`r` must satisfy 0 < min <= max <= 1, but got \(0, 1\)"):
        check_range("r", (0, 1), 0, 1, open_low=True)
    for pair in ((1, math.nan), (1, math.inf), (-math.inf, 1)):
        with pytest.raises(ValueError, match=r"`r` must be a pair of finite numbers \(min, max\), but got "):
            check_range("r", pair, 0)


def test_check_rank():
    assert check_rank("rank", np.int64(1), "world_size", 2) == 1
    with pytest.raises(ValueError, match=r"`rank` must be in \[0, 1\] \(world_size 2\), but got 2"):
        check_rank("rank", 2, "world_size", 2)
    with pytest.raises(ValueError, match="`rank` must be >= 0, but got -1"):
        check_rank("rank", -1, "world_size", 2)


@pytest.mark.parametrize("text, default, expect", [
    (None, True, True), ("", False, False), ("1", False, True), (" Yes ", False, True), ("ON", False, True),
    ("true", False, True), ("0", True, False), ("no", True, False), ("Off", True, False), ("false", True, False)])
def test_env_flag(monkeypatch, text, default, expect):
    if text is None:
        monkeypatch.delenv("PMG_DALI_TEST_FLAG", raising=False)
    else:
        monkeypatch.setenv("PMG_DALI_TEST_FLAG", text)
    assert env_flag("PMG_DALI_TEST_FLAG", default) is expect


def test_env_flag_refuses_other_words(monkeypatch):
    monkeypatch.setenv("PMG_DALI_TEST_FLAG", "maybe")
    with pytest.raises(ValueError, match="the environment variable PMG_DALI_TEST_FLAG must be one of .* 'maybe'"):
        env_flag("PMG_DALI_TEST_FLAG", True)
