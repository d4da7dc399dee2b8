"""HTTP simulators of the vendor APIs, for the local demo and the integration tests."""

from collections.abc import Callable

from ._server import RecordedRequest
from .bugpilot import BugpilotSimulator
from .freshdesk import FreshdeskSimulator
from .front import FrontSimulator
from .generic import GenericSimulator
from .helpdesk import HelpdeskSimulator
from .helpscout import HelpScoutSimulator
from .hubspot import HubSpotSimulator
from .intercom import IntercomSimulator
from .jira import JiraSimulator
from .lambdatest import LambdaTestSimulator
from .notte import NotteSimulator
from .provider import ProviderSimulator, Simulator
from .zendesk import ZendeskSimulator

# The helpdesks `make demo HELPDESK=…` can run: one line per helpdesk simulator.
HELPDESK_SIMULATORS: dict[str, Callable[[], HelpdeskSimulator]] = {
    "freshdesk": FreshdeskSimulator,
    "front": FrontSimulator,
    "generic": GenericSimulator,
    "helpscout": HelpScoutSimulator,
    "hubspot": HubSpotSimulator,
    "intercom": IntercomSimulator,
    "jira": JiraSimulator,
    "zendesk": ZendeskSimulator,
}

# The capture sources the demo and the tests run, with their demo credentials: one line each.
PROVIDER_SIMULATORS: dict[str, Callable[[], ProviderSimulator]] = {
    "bugpilot": BugpilotSimulator,
    "lambdatest": LambdaTestSimulator,
    "notte": NotteSimulator,
}

__all__ = [
    "HELPDESK_SIMULATORS",
    "PROVIDER_SIMULATORS",
    "BugpilotSimulator",
    "FreshdeskSimulator",
    "FrontSimulator",
    "GenericSimulator",
    "HelpScoutSimulator",
    "HelpdeskSimulator",
    "HubSpotSimulator",
    "IntercomSimulator",
    "JiraSimulator",
    "LambdaTestSimulator",
    "NotteSimulator",
    "ProviderSimulator",
    "RecordedRequest",
    "Simulator",
    "ZendeskSimulator",
]
