"""Option values every command validates the same way (a leaf, like realtime.errors)."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from typing import TypeVar

MAX_THREADS = 4 * (os.cpu_count() or 1)  # threads or processes: more only slows a run down
Number = TypeVar("Number", int, float)


def bounded(
    kind: Callable[[str], Number], low: float, high: float | None = None, *, open_low: bool = False
) -> Callable[[str], Number]:
    """An argparse `type`: a finite `kind` (int or float) from `low` (excluded if `open_low`) to `high`."""
    name = "an integer" if kind is int else "a finite number"
    wanted = f"{name} {'>' if open_low else '>='} {low:g}" if high is None else f"{name} from {low:g} to {high:g}"

    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        too_low = value <= low if open_low else value < low
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    return parse


class OrderedPair(argparse.Action):
    """An argparse action for `nargs=2` ranges (LOW HIGH): refuses LOW above HIGH as a usage error."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object, option: str | None = None
    ) -> None:
        low, high = values  # type: ignore[misc]
        if low > high:
            parser.error(f"{option}: LOW ({low:g}) is above HIGH ({high:g})")
        setattr(namespace, self.dest, (low, high))
