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
    # Set when no helpdesk is configured: `missing` lists theirs, any one of them would do.
    alternatives: tuple[str, ...] = ()
    # A capture source (its page is under docs/sources/), not a helpdesk.
    source: bool = False

    def __str__(self) -> str:
        if self.alternatives:
            return (
                f"no helpdesk configured: set the keys of one of {', '.join(self.alternatives)} "
                "(in .env or the environment; docs/helpdesks/ has its page)"
            )
        keys = ", ".join(self.missing)
        page = f"docs/{'sources' if self.source else 'helpdesks'}/{self.integration}.md"
        if self.needed:
            return (
                f"{self.integration}: {keys} not set (in .env or the environment; {page} says "
                "where to find them)"
            )
        return (
            f"{self.integration}: not configured (optional; set {keys} in .env or the "
            f"environment to use it; {page} says where to find them)"
        )


def credential_gaps(environ: Mapping[str, str]) -> list[Gap]:
    """Every integration with secret keys unset in `environ`, helpdesks first.

    Needs ``capture_bridge`` importable (the runner puts the layer on ``sys.path``).
    """
    from capture_bridge.capture import DEFAULT_PROVIDER, provider_specs
    from capture_bridge.helpdesks import helpdesk_specs
    from capture_bridge.settings import settings_from

    helpdesks = {spec.name: spec.secret_keys for spec in helpdesk_specs()}
    touched = [name for name, keys in helpdesks.items() if any(environ.get(k) for k in keys)]
    gaps = []
    if not touched:
        # Helpdesks are alternatives: one is needed, the others are not "optional extras".
        every_key = tuple(key for names in helpdesks.values() for key in names)
        gaps.append(Gap("helpdesk", every_key, True, alternatives=tuple(helpdesks)))
    # A helpdesk in use (some key set) needs all of its keys; the others are not mentioned.
    for name in touched:
        missing = tuple(key for key in helpdesks[name] if not environ.get(key, "").strip())
        if missing:
            gaps.append(Gap(name, missing, True))
    # A source says what it lacks (keys, and settings such as LambdaTest's username); one other
    # than the default is optional until something of it is set.
    given = {key: value for key, value in environ.items() if value.strip()}
    for spec in provider_specs():
        needs = spec.unconfigured(settings_from({"TABLE_NAME": "-"}))
        missing = tuple(spec.unconfigured(settings_from({**given, "TABLE_NAME": "-"})))
        if missing:
            needed = spec.name == DEFAULT_PROVIDER or len(missing) < len(needs)
            gaps.append(Gap(spec.name, missing, needed, source=True))
    return gaps
