"""What a local run lacks before its first webhook: each integration's credentials.

Read from the bridge's own registries, so a new helpdesk or capture source is checked without
a change here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Gap:
    """One integration's unset secret keys; `needed` when requests fail without them."""

    integration: str
    missing: tuple[str, ...]
    needed: bool

    def __str__(self) -> str:
        keys = ", ".join(self.missing)
        if self.needed:
            return f"{self.integration}: {keys} not set (in .env or the environment)"
        return f"{self.integration}: not configured (optional; set {keys} to use it)"


def credential_gaps(environ: Mapping[str, str]) -> list[Gap]:
    """Every integration with secret keys unset in `environ`, helpdesks first.

    Needs ``capture_bridge`` importable (the runner puts the layer on ``sys.path``).
    """
    from capture_bridge.capture import DEFAULT_PROVIDER, provider_module, supported_providers
    from capture_bridge.helpdesks import helpdesk_module, supported_helpdesks

    modules = [(name, helpdesk_module(name), True) for name in supported_helpdesks()]
    modules += [
        # A source other than the default is optional until a key for it is set.
        (name, provider_module(name), name == DEFAULT_PROVIDER)
        for name in supported_providers()
    ]
    gaps = []
    for name, module, always_needed in modules:
        keys: tuple[str, ...] = module.SECRET_KEYS
        missing = tuple(key for key in keys if not environ.get(key, "").strip())
        if missing:
            needed = always_needed or len(missing) < len(keys)
            gaps.append(Gap(name, missing, needed))
    return gaps
