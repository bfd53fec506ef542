"""Whether a Key Vault create may go now, and how long to wait when it may not: pure, with a reason.

The shared budget is the grants of the last window per vault. Grants are spaced evenly, one create's share of
``headroom`` of the limit apart (per vault, and across every vault of its subscription), never in bursts: Key Vault
counts a create when it arrives, a network trip (up to a second or more on a busy instance) after its grant, and
evenly spaced grants arrive evenly spaced whatever that trip, where a burst's stragglers would meet the next burst
in Key Vault's window. Key Vault's own limit over the sliding window is kept as well, as a hard cap. A 429 all the
same (another client uses the vault, or Key Vault counts otherwise) pauses the vault for what Key Vault asked
(``Retry-After``) or, without one, for an exponential back-off, and cuts the vault's share of its limit: by a tenth
for a lone 429, by half for each further one within two windows; the share recovers a tenth per window without a
429 (additive increase, multiplicative decrease).

A create that finds no room soon does not hold its invocation: it goes back to the queue with a delay that books
its turn (``book``): each booking moves the vault's and the subscription's next free turn on by one create's share
of the window, so a storm of 10,000 requests comes back spread at the rate Key Vault allows instead of all at once.
A booking is a hint, not a slot: the returning request still takes a grant, so a late one cannot overshoot.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from renewal.pacing.limits import CREATES_PER_VAULT, SUBSCRIPTION_FACTOR, WINDOW_SECONDS

SCHEMA = "certlc.keyvault-budget/1"
MIN_SHARE = 0.25
CATCH_UP = 0.5  # after a late grant, the next may come after half of one create's share of the window
LONE_429_CUT = 0.9  # a lone 429 (a straggler, another client's burst) costs a tenth of the rate, for a window
STREAK_429_CUT = 0.5  # 429s one after another: someone else uses the vault in earnest
RECOVERY_PER_WINDOW = 0.1
MAX_PAUSE_WINDOWS = 6.0  # a back-off without Retry-After stops doubling at a minute (at the real window)

GrantReason = Literal["granted", "vault_paused", "vault_full", "subscription_full"]


@dataclass(frozen=True)
class Limits:
    per_vault: int = CREATES_PER_VAULT
    per_subscription: int = CREATES_PER_VAULT * SUBSCRIPTION_FACTOR
    window: float = WINDOW_SECONDS
    headroom: float = 0.95


@dataclass(frozen=True)
class VaultState:
    grants: tuple[tuple[float, int], ...] = ()  # (when, cost) of each create granted in the last window
    paused_until: float = 0.0
    throttled_at: float | None = None  # the last 429 Key Vault answered a create of this vault
    streak: int = 0  # 429s each within two windows of the one before
    share: float = 1.0  # of the vault's limit, as set by the last 429
    booked_until: float = 0.0  # the next turn a request sent back to the queue is given


@dataclass(frozen=True)
class Budget:
    vaults: Mapping[str, VaultState] = field(default_factory=dict)
    booked_until: Mapping[str, float] = field(default_factory=dict)  # per subscription, as VaultState's

    def to_json(self) -> str:
        vaults = {name: asdict(s) | {"grants": [list(g) for g in s.grants]} for name, s in self.vaults.items()}
        body = {"schema": SCHEMA, "vaults": vaults, "booked_until": dict(self.booked_until)}
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Budget:
        """The budget in the blob; an empty or unreadable blob is an empty budget (it refills within a window)."""
        try:
            body = json.loads(text) if text.strip() else {}
            if body.get("schema") != SCHEMA:
                return cls()
            vaults = {
                name: VaultState(**(state | {"grants": tuple((float(t), int(c)) for t, c in state["grants"])}))
                for name, state in body["vaults"].items()
            }
            return cls(vaults, {name: float(at) for name, at in body.get("booked_until", {}).items()})
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls()


@dataclass(frozen=True)
class Grant:
    granted: bool
    reason: GrantReason
    wait_seconds: float  # until a grant could be given, when it was not
    budget: Budget  # what to write back when granted


def take(budget: Budget, vault: str, cost: int, now: float, limits: Limits, peers: Collection[str]) -> Grant:
    """A create of ``cost`` for ``vault`` now, whose subscription holds ``peers`` (the vault included)."""
    budget = pruned(budget, now, limits.window)
    state = budget.vaults.get(vault, VaultState())
    if state.paused_until > now:
        return Grant(False, "vault_paused", state.paused_until - now, budget)
    vault_rate = limits.per_vault * limits.headroom * share_now(state, now, limits.window)
    together = [g for name in {*peers, vault} for g in budget.vaults.get(name, VaultState()).grants]
    subscription_rate = limits.per_subscription * limits.headroom
    vault_wait = max(
        wait_for_spacing(state.grants, now, limits.window / vault_rate),
        wait_for_room(state.grants, cost, limits.per_vault, now, limits.window),
    )
    subscription_wait = max(
        wait_for_spacing(together, now, limits.window / subscription_rate),
        wait_for_room(together, cost, limits.per_subscription, now, limits.window),
    )
    if vault_wait > 0 or subscription_wait > 0:
        reason: GrantReason = "vault_full" if vault_wait >= subscription_wait else "subscription_full"
        return Grant(False, reason, max(vault_wait, subscription_wait), budget)
    granted = replace(state, grants=(*state.grants, (now, cost)))
    return Grant(True, "granted", 0.0, replace(budget, vaults={**budget.vaults, vault: granted}))


def book(
    budget: Budget, vault: str, subscription: str, cost: int, earliest: float, now: float, limits: Limits
) -> tuple[Budget, float]:
    """A turn for a request sent back to the queue, no earlier than ``earliest``: the new budget and the seconds
    until the turn. Turns follow each other by one create's share of the window, of the vault's limit (as its share
    stands) and of the subscription's."""
    budget = pruned(budget, now, limits.window)
    state = budget.vaults.get(vault, VaultState())
    vault_rate = limits.per_vault * limits.headroom * share_now(state, now, limits.window)
    subscription_rate = limits.per_subscription * limits.headroom
    turn = max(earliest, state.booked_until, budget.booked_until.get(subscription, 0.0))
    booked = replace(state, booked_until=max(state.booked_until, turn) + cost * limits.window / vault_rate)
    subscription_next = max(budget.booked_until.get(subscription, 0.0), turn) + cost * limits.window / subscription_rate
    booked_until = {**budget.booked_until, subscription: subscription_next}
    return Budget({**budget.vaults, vault: booked}, booked_until), turn - now


def after_throttle(budget: Budget, vault: str, now: float, retry_after: float | None, limits: Limits) -> Budget:
    """Key Vault answered a create of ``vault`` 429: pause the vault and cut its share."""
    budget = pruned(budget, now, limits.window)
    state = budget.vaults.get(vault, VaultState())
    recent = state.throttled_at is not None and now - state.throttled_at < 2 * limits.window
    streak = state.streak + 1 if recent else 1
    cut = LONE_429_CUT if streak == 1 else STREAK_429_CUT
    if retry_after is None:  # the guidance's exponential back-off, in tenths of a window (1 s, 2 s, 4 s ...)
        pause = min(limits.window / 10 * 2 ** (streak - 1), limits.window * MAX_PAUSE_WINDOWS)
    else:
        pause = retry_after
    paused = replace(
        state,
        paused_until=max(state.paused_until, now + pause),
        throttled_at=now,
        streak=streak,
        share=max(MIN_SHARE, share_now(state, now, limits.window) * cut),
    )
    return replace(budget, vaults={**budget.vaults, vault: paused})


def share_now(state: VaultState, now: float, window: float) -> float:
    if state.throttled_at is None:
        return 1.0
    return min(1.0, state.share + RECOVERY_PER_WINDOW * max(0.0, now - state.throttled_at) / window)


def wait_for_spacing(grants: Collection[tuple[float, int]], now: float, seconds_per_unit: float) -> float:
    """Seconds until the grants of the window, newest first, have each had their cost's share of time at the paced
    rate: the k newest at least their costs' span before now. A grant made late (its thread busy, a write retried)
    would otherwise push every later one back; here the next may follow it sooner, down to ``CATCH_UP`` of one
    create's share, so the rate holds over time without a burst."""
    wait, used = 0.0, 0
    for k, (at, cost) in enumerate(sorted(grants, reverse=True), start=1):
        used += cost
        span = used * seconds_per_unit * (CATCH_UP if k == 1 else 1.0)
        wait = max(wait, at + span - now)
    return wait


def wait_for_room(grants: Collection[tuple[float, int]], cost: int, cap: int, now: float, window: float) -> float:
    """Seconds until the grants still in the window leave room for ``cost`` under ``cap`` (0: room now)."""
    excess = sum(c for _, c in grants) + cost - cap
    if excess <= 0:
        return 0.0
    freed = 0
    for at, c in sorted(grants):
        freed += c
        if freed >= excess:
            return max(0.0, at + window - now)
    return window


def pruned(budget: Budget, now: float, window: float) -> Budget:
    """Without the grants that left the window, and without vaults that hold nothing worth keeping."""
    kept = {}
    for name, state in budget.vaults.items():
        state = replace(state, grants=tuple(g for g in state.grants if g[0] > now - window))
        throttled = state.throttled_at
        if throttled is not None and share_now(state, now, window) >= 1.0 and now - throttled >= 2 * window:
            state = replace(state, throttled_at=None, streak=0, share=1.0)  # recovered: a next 429 starts anew
        if state.grants or state.paused_until > now or state.throttled_at is not None or state.booked_until > now:
            kept[name] = state
    return Budget(kept, {name: at for name, at in budget.booked_until.items() if at > now})
