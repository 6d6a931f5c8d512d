"""The apply lock's algorithm (registry/lock.py) over an in-memory lock store and a clock the test
moves: what a second backend gets for free once it implements the primitives. The MLflow
primitives are exercised against real servers in tests/auth/test_lock.py and tests/reliability."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from mlflow_gitops.errors import LockError
from mlflow_gitops.registry.lock import LEASE_S, WAIT_VARIABLE, Clock, HeldLock, hold


@dataclass
class Time:
    """Wall and monotonic time that move only when the lock sleeps."""

    now: float = 1_800_000_000.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def clock(self) -> Clock:
        return Clock(wall=lambda: self.now, monotonic=lambda: self.now, sleep=self.sleep)


@dataclass
class MemoryLock:
    """A LockStore in memory: `held` is the lock object, `calls` what the algorithm asked."""

    held: HeldLock | None = None
    lose_create_answer: bool = False  # the create succeeds but its answer is lost
    calls: list[str] = field(default_factory=list)
    user: str = "user 'alice'"
    lock_where: str = "the lock object at memory://"

    def create_lock(self, token: str, holder: str, lease_until: float) -> bool:
        self.calls.append("create")
        if self.held is not None:
            return False
        self.held = HeldLock(True, token, holder, "alice", lease_until)
        return not self.lose_create_answer

    def read_lock(self) -> HeldLock | None:
        self.calls.append("read")
        return self.held

    def renew_lock(self, lease_until: float) -> None:
        self.calls.append("renew")

    def break_lock(self, held: HeldLock) -> None:
        self.calls.append("break")
        self.held = None

    def release_lock(self, lease_s: float) -> None:
        self.calls.append("release")
        self.held = None

    def hidden_lock(self, waited: str) -> LockError:
        return LockError(f"hidden for {waited}")


def test_a_free_lock_is_taken_and_released() -> None:
    store, time = MemoryLock(), Time()
    with hold(store, "apply by alice", time.clock()):
        assert store.held is not None
        assert store.held.holder == "apply by alice"
        assert store.held.lease_until == time.now + LEASE_S
    assert store.held is None
    assert store.calls == ["create", "release"]


def test_a_lock_whose_lease_ran_out_is_broken_then_taken() -> None:
    time = Time()
    store = MemoryLock(held=HeldLock(True, "other", "killed apply", "bob", time.now - 1))
    with hold(store, "apply by alice", time.clock()):
        assert store.held is not None
        assert store.held.holder == "apply by alice"
    assert store.calls == ["create", "read", "break", "create", "release"]


def test_a_lost_answer_to_our_own_create_is_our_lock() -> None:
    store, time = MemoryLock(lose_create_answer=True), Time()
    with hold(store, "apply by alice", time.clock()):
        pass
    assert store.calls == ["create", "read", "release"]


def test_a_live_lock_ends_the_wait_at_the_deadline_naming_its_holder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(WAIT_VARIABLE, "5")
    time = Time()
    live = HeldLock(True, "other", "apply of PR #7", "bob", time.now + 3600)
    store = MemoryLock(held=live)
    with pytest.raises(LockError) as waited, hold(store, "apply by alice", time.clock()):
        pass
    assert "another apply holds the registry's apply lock (apply of PR #7" in waited.value.message
    assert "did not release it within 5 s" in waited.value.message
    assert WAIT_VARIABLE in waited.value.hint
    assert "break" not in store.calls
    assert "release" not in store.calls
    assert store.held == live


def test_a_lock_this_user_may_not_read_ends_with_the_stores_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(WAIT_VARIABLE, "2")
    store, time = MemoryLock(held=HeldLock(readable=False)), Time()
    with pytest.raises(LockError, match="hidden for 2 s"), hold(store, "me", time.clock()):
        pass
    assert "break" not in store.calls
