"""DNS answers as the platform reads them: what came back, in a form the diagnosis can reason about."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class DnsOutcome(enum.StrEnum):
    OK = "ok"
    NXDOMAIN = "nxdomain"  # the name does not exist
    NODATA = "nodata"  # the name exists, without records of that type
    ERROR = "error"  # timeout, refused, SERVFAIL: says nothing about the records


@dataclass(frozen=True)
class DnsAnswer:
    outcome: DnsOutcome
    values: tuple[str, ...] = ()  # lowercase names without the trailing dot, or addresses, or CAA text
    detail: str = ""  # for ERROR: what went wrong, in words

    def describe(self) -> str:
        if self.outcome == DnsOutcome.OK:
            return ", ".join(self.values)
        if self.outcome == DnsOutcome.NXDOMAIN:
            return "nothing (the name does not exist)"
        if self.outcome == DnsOutcome.NODATA:
            return "nothing (no record of that type)"
        return f"no answer ({self.detail})"
