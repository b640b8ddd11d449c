"""What `renew` and `check` report: the tokens a renewal selected and how they
ended, and the findings of a check. Pure: text out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from egain_token_operator.ctl.readout import printable
from egain_token_operator.decisions.clientref import slashed
from egain_token_operator.decisions.clients import ClientKey


def selection_text(
    namespace: str | None, label_selector: str | None, client: ClientKey | None
) -> str:
    """The EgainTokens `renew` selected, in words: `EgainTokens using ... in namespace a`."""
    where = f"namespace {namespace}" if namespace else "every namespace"
    if client is not None:
        return f"EgainTokens using {slashed(client)} in {where}"
    if label_selector is not None:
        return f"EgainTokens matching {label_selector} in {where}"
    return f"EgainTokens in {where}"


def renewal_summary(endings: Mapping[Any, str], timed_out: int) -> str:
    """The last line of a `renew` of many: how many ended which way."""
    counts = {ending: list(endings.values()).count(ending) for ending in set(endings.values())}
    total = len(endings) + timed_out
    said = [
        f"{counts.get('renewed', 0)} renewed",
        f"{counts.get('failed', 0)} failed",
        f"{timed_out} timed out",
    ]
    if counts.get("deleted"):
        said.append(f"{counts['deleted']} deleted meanwhile")
    return f"{total} EgainToken(s): {', '.join(said)}"


class Outcome(StrEnum):
    """The outcome of one step of `check`."""

    OK = "ok"
    FAIL = "FAIL"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of a `check` report."""

    outcome: Outcome
    what: str


def check_report(namespace: str, name: str, findings: Sequence[Finding]) -> str:
    """The `check` report: one line per finding (`printable`: findings quote specs,
    statuses and eGain's answers), then the summary."""
    lines = [f"EgainToken {namespace}/{name}"]
    lines += [f"  {finding.outcome.value:<4}  {printable(finding.what)}" for finding in findings]
    failed = sum(finding.outcome is Outcome.FAIL for finding in findings)
    lines.append("all checks passed" if not failed else f"{failed} check(s) failed")
    return "\n".join(lines)
