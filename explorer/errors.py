"""Errors a user can act on. The CLI turns every ExplorerError into a message and an exit code."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class ExplorerError(Exception):
    """An error caused by input or environment; its message is shown to the user as is."""

    exit_code = 1


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most similar to `name` (case-insensitive), or None when nothing is close."""
    by_key = {c.lower(): c for c in candidates}
    hits = difflib.get_close_matches(name.lower(), list(by_key), n=1, cutoff=0.5)
    return by_key[hits[0]] if hits else None


def did_you_mean(name: str, candidates: Iterable[str], otherwise: str = "") -> str:
    """ "; did you mean 'X'?" for the closest candidate, else `otherwise`: the one suggestion text of every message."""
    hint = closest(name, candidates)
    return f"; did you mean {hint!r}?" if hint else otherwise


def unknown_keys(mapping: Mapping[Any, Any], allowed: Sequence[str], path: str = "") -> list[Problem]:
    """One problem per key of `mapping` that is not in `allowed`, with its YAML path and a suggestion."""
    return [
        Problem(
            f"{path}.{key}" if path else str(key),
            f"unknown key {key!r}" + did_you_mean(str(key), allowed, f"; allowed: {', '.join(allowed)}"),
        )
        for key in mapping
        if key not in allowed
    ]


class UnknownNameError(ExplorerError):
    """A board, device or other named thing that is not in the database."""

    def __init__(self, kind: str, name: str, known: Sequence[str]) -> None:
        self.kind, self.name, self.known = kind, name, list(known)
        hint = closest(name, known)
        message = f"unknown {kind} {name!r}. Known {kind}s: {', '.join(known)}."
        if hint:
            message += f" Did you mean {hint!r}?"
        super().__init__(message)


@dataclass(frozen=True)
class Problem:
    """One problem in a configuration file, with the YAML path it concerns (e.g. `dpu.cores`)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(ExplorerError):
    """A configuration (YAML/JSON file or flags) with one or more problems, all reported together."""

    exit_code = 2

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source, self.problems = source, list(problems)
        lines = [f"{source}: {len(self.problems)} problem(s):"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class RuleViolation:
    """A DPU configuration rule that a configuration breaks: the rule's id and why."""

    rule: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message}"


class IllegalConfigError(ExplorerError):
    """A DPU configuration that breaks one or more rules of the IP or the device."""

    exit_code = 3

    def __init__(self, violations: Sequence[RuleViolation]) -> None:
        self.violations = list(violations)
        lines = ["illegal DPU configuration:"] + [f"  - {v}" for v in self.violations]
        super().__init__("\n".join(lines))
