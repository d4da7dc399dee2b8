"""Fault injection for the crash-point tests: a collaborator's call that kills its function.

A fault names a runtime's collaborator (`Target`), one of its methods, and whether the function
dies before the real call or right after it took effect (`When`). `injected` gives a runtime
whose faulty method raises `death` (each suite chooses what a death is: an exception the product
may catch, or a BaseException that passes every `except Exception`, as a killed function).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import pytest

from capture_bridge.runtime import Runtime


class Target(Enum):
    """The collaborator whose call dies; the value names the runtime's attribute for it."""

    PROVIDER = "provider"
    HELPDESK = "helpdesk"
    STORE = "store"
    QUEUE = "queue"


class When(Enum):
    """Whether the function dies before the real call, or right after it took effect."""

    BEFORE = "before"
    AFTER = "after"


@dataclass(frozen=True)
class Fault:
    """The function dies at `target.method`, `when` the real call is made."""

    target: Target
    method: str
    when: When


def dying(real: Callable[..., Any], when: When, death: type[BaseException]) -> Callable[..., Any]:
    """`real`, made to raise `death` before it runs or once it has run."""

    def call(*args: Any, **kwargs: Any) -> Any:
        if when is When.AFTER:
            real(*args, **kwargs)
        raise death(f"died {when.value} {real.__name__}")

    return call


class Dying:
    """`collaborator`, except that its `fault.method` dies."""

    def __init__(self, collaborator: Any, fault: Fault, death: type[BaseException]) -> None:
        self._collaborator = collaborator
        self._fault = fault
        self._death = death

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._collaborator, name)
        return dying(real, self._fault.when, self._death) if name == self._fault.method else real


@contextmanager
def injected(runtime: Runtime, fault: Fault, death: type[BaseException]) -> Iterator[Runtime]:
    """A copy of `runtime` whose `fault` raises `death`; the shared store is patched only inside."""
    if fault.target is Target.STORE:
        store = runtime.store
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(
                store, fault.method, dying(getattr(store, fault.method), fault.when, death)
            )
            yield replace(runtime)
        return
    if fault.target is Target.QUEUE:
        yield replace(runtime, queue=Dying(runtime.queue, fault, death))
        return
    build = getattr(runtime, fault.target.value)

    def faulty(*args: Any, **kwargs: Any) -> Any:
        # A stand-in, never the collaborator itself: adapters outlive the call (the runtime keeps
        # them per settings), so a patched one would keep dying after the fault.
        return Dying(build(*args, **kwargs), fault, death)

    faulted = replace(runtime)
    object.__setattr__(faulted, fault.target.value, faulty)
    yield faulted
