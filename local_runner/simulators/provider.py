"""What the demo and the tests need from a simulator, and from a capture source's in particular.

The demo and the tests start every capture source in `PROVIDER_SIMULATORS` (in this package's
`__init__`) and point the bridge at it with its `bridge_settings`, so a new capture source
joins them with its simulator and its registry line alone.
"""

from __future__ import annotations

from typing import Protocol, Self


class Simulator(Protocol):
    """A vendor's API over real HTTP, as the demo and the tests run it."""

    @property
    def url(self) -> str: ...

    def start(self) -> Self: ...

    def stop(self) -> None: ...

    def bridge_settings(self) -> dict[str, str]:
        """The bridge's settings for this vendor (URL, credentials, secrets), pointed at this."""
        ...


class ProviderSimulator(Simulator, Protocol):
    """A capture source's API; `provider` is its name in PROVIDER_SIMULATORS."""

    provider: str
