"""Helpers of the command-line tests."""

from __future__ import annotations


def one_error_line(text: str) -> str:
    """The single line an error printed; fails if there is more (a traceback)."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "error" in lines[0], text
    return lines[0]
