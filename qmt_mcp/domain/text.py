"""Text from the broker and the market is data, never instructions: keep it short and printable."""

from __future__ import annotations

import unicodedata

MAX_LEN = 200


def clean_text(text: str | None, limit: int = MAX_LEN) -> str:
    """Drop control and format characters (newlines, bidi overrides, zero-width), collapse spaces,
    cut to `limit` characters."""
    if not text:
        return ""
    kept = "".join(" " if ch in "\r\n\t" else ch for ch in text if unicodedata.category(ch)[0] != "C" or ch in "\r\n\t")
    return " ".join(kept.split())[:limit]
