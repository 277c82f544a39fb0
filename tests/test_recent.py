"""explorer/recent.py: a mapping that keeps the most recently used entries."""

from __future__ import annotations

from explorer.recent import Recent


def test_keeps_the_most_recently_used() -> None:
    made: list[str] = []
    recent: Recent[str, str] = Recent(2)

    def make(key: str) -> str:
        made.append(key)
        return key.upper()

    assert recent.get_or_make("a", lambda: make("a")) == "A"
    recent.get_or_make("b", lambda: make("b"))
    assert recent.get_or_make("a", lambda: make("a")) == "A"  # used again: now the most recent
    recent.get_or_make("c", lambda: make("c"))  # drops b, the least recently used
    assert "a" in recent and "c" in recent and "b" not in recent and len(recent) == 2
    recent.get_or_make("b", lambda: make("b"))
    assert made == ["a", "b", "c", "b"]
