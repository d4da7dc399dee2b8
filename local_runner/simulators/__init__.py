"""HTTP simulators of the vendor APIs, for the local demo and the integration tests."""

from ._server import RecordedRequest
from .bugpilot import BugpilotSimulator
from .lambdatest import LambdaTestSimulator
from .notte import NotteSimulator
from .zendesk import ZendeskSimulator

__all__ = [
    "BugpilotSimulator",
    "LambdaTestSimulator",
    "NotteSimulator",
    "RecordedRequest",
    "ZendeskSimulator",
]
