"""Kubernetes label selectors (`metav1.LabelSelector`): parsed once, matched purely.

The official client only carries selectors to the API server as strings; a
ClusterEgainClient's `allowedNamespaces.selector` is matched by the operator
itself, against the labels of the namespace an EgainToken lives in, so it is
done here, with the API server's rules: every `matchLabels` pair and every
`matchExpressions` requirement must hold, and `{}` matches every set of labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class InvalidSelectorError(ValueError):
    """The selector is malformed; the message names the field under the selector."""


class Operator(StrEnum):
    """The operators of `matchExpressions`."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True, slots=True)
class Requirement:
    """One `matchExpressions` item."""

    key: str
    operator: Operator
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when `labels` satisfy the requirement."""
        if self.operator is Operator.EXISTS:
            return self.key in labels
        if self.operator is Operator.DOES_NOT_EXIST:
            return self.key not in labels
        # As the API server does: NotIn also holds when the key is absent.
        inside = self.key in labels and labels[self.key] in self.values
        return inside if self.operator is Operator.IN else not inside


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A parsed `metav1.LabelSelector`."""

    match_labels: Mapping[str, str]
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when `labels` satisfy every pair and every requirement."""
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            requirement.matches(labels) for requirement in self.requirements
        )


def parse_selector(value: Any) -> LabelSelector:
    """Parse a `LabelSelector` object, or raise `InvalidSelectorError`."""
    if not isinstance(value, Mapping):
        raise InvalidSelectorError("must be an object")
    match_labels = value.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in match_labels.items()
    ):
        raise InvalidSelectorError("matchLabels must map strings to strings")
    expressions = value.get("matchExpressions") or []
    if not isinstance(expressions, list):
        raise InvalidSelectorError("matchExpressions must be a list")
    return LabelSelector(
        dict(match_labels),
        tuple(_requirement(item, f"matchExpressions[{i}]") for i, item in enumerate(expressions)),
    )


def _requirement(item: Any, field: str) -> Requirement:
    if not isinstance(item, Mapping) or not isinstance(item.get("key"), str) or not item["key"]:
        raise InvalidSelectorError(f"{field}.key is required")
    try:
        operator = Operator(str(item.get("operator")))
    except ValueError:
        raise InvalidSelectorError(
            f"{field}.operator must be In, NotIn, Exists or DoesNotExist"
        ) from None
    values = item.get("values") or []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InvalidSelectorError(f"{field}.values must list strings")
    takes_values = operator in (Operator.IN, Operator.NOT_IN)
    if takes_values and not values:
        raise InvalidSelectorError(f"{field}.values must not be empty for {operator}")
    if not takes_values and values:
        raise InvalidSelectorError(f"{field}.values must be empty for {operator}")
    return Requirement(item["key"], operator, frozenset(values))
