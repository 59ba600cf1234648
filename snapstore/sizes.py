"""Byte counts as people read them, the one way the command line and the web pages print them."""

from __future__ import annotations


def human_size(n: float) -> str:
    """``n`` bytes in B, kB, MB or GB (powers of 1000): ``"518.0 kB"``."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)
