"""The sizes, durations and limits of a run: what `make bench`'s flags set."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """What one run measures, and at what size."""

    tokens: int = 5000
    trials: int = 50
    idle_seconds: float = 60.0
    settle_seconds: float = 10.0
    max_concurrent_requests: int = 16
    unrelated_kib: int = 64
    storm_tokens: int = 1000
    storm_lead: float = 20.0
    storm_latency: float = 0.05
    short_tokens: int = 100
    short_lifetime: int = 30
    short_seconds: float = 120.0
    timeout: float = 900.0
    # i) the synthetic per-event row: fleet sizes, in EgainTokens.
    event_sizes: tuple[int, ...] = (1000, 5000, 10000)
    # j) one burst spread over namespaces: watched cluster-wide, and listed.
    spread_tokens: int = 1000
    spread_namespaces: int = 100
    spread_listed: int = 10
    # k) EgainTokens in groups of identical requests, and the tokens' lifetime.
    shared_tokens: int = 1000
    shared_groups: int = 10
    shared_lifetime: int = 60
    # l) short-lived tokens refreshed faster than a replica can: its capacity.
    capacity_tokens: int = 1000
    capacity_lifetime: int = 12
    capacity_seconds: float = 60.0
    # m) hostile tenants: forged Secrets and their size, hanging requests, and
    # how long the hammering token is forced, how often, and its client's budget.
    forged_secrets: int = 40
    forged_kib: int = 700
    hanging_tokens: int = 40
    hammer_seconds: float = 60.0
    hammer_force_every: float = 5.0
    hammer_budget: int = 2  # the hammered client's requests per minute
    # c) each burst's operator sampled by py-spy (`benchmark.profile`).
    profile: bool = False

    @property
    def burst_sizes(self) -> list[int]:
        """1,000, 5,000 and `tokens`, those up to `tokens`."""
        return sorted({min(size, self.tokens) for size in (1000, 5000, self.tokens)})

    @property
    def storm_sizes(self) -> list[int]:
        """EgainTokens in the storms: `storm_tokens` and `tokens`."""
        return sorted({min(self.storm_tokens, self.tokens), self.tokens})

    @property
    def spread_size(self) -> int:
        """EgainTokens in each spread burst."""
        return min(self.spread_tokens, self.tokens)

    @property
    def shared_size(self) -> int:
        """EgainTokens in the shared row."""
        return min(self.shared_tokens, self.tokens)

    @property
    def capacity_size(self) -> int:
        """EgainTokens in the capacity row."""
        return min(self.capacity_tokens, self.tokens)

    @property
    def short_size(self) -> int:
        """EgainTokens in the short-lifetime run."""
        return min(self.short_tokens, self.tokens)
