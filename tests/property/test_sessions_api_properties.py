"""Properties of the sessions API: whatever arrives, no 5xx and nothing the document contradicts.

Requests are drawn around the real routes (their methods, plausible and hostile paths, query
parameters, headers and bodies, with and without the token), sent through the local runner's
API Gateway to the handler on moto, and every answer is validated against openapi/sessions.yaml.
The table fills up across examples; that is fine here: listings, duplicates and conflicts are
then reached too.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local_runner.simulators import BugpilotSimulator
from tests.conftest import Clock, runtime_with
from tests.integration.test_sessions_api import (
    BUGPILOT_BODY,
    LAMBDATEST_BODY,
    TOKEN,
    UNKNOWN_ID,
    Api,
)

pytestmark = pytest.mark.property

# Each example may reach DynamoDB and the simulators: three quarters of the profile's examples
# (150 in `make test`, 3,750 with HYPOTHESIS_PROFILE=fuzz, as `make fuzz` sets).
EXAMPLES = settings.default.max_examples * 3 // 4

_text = st.text(max_size=40)
_field_values = st.one_of(
    _text,
    st.integers(),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.sampled_from(["zendesk", "bugpilot", "lambdatest", "notte", "upload-session", "1001"]),
)
_bodies = st.one_of(
    st.sampled_from([BUGPILOT_BODY, LAMBDATEST_BODY]).flatmap(
        lambda base: st.dictionaries(
            st.sampled_from([*base, "userEmail", "action", "description", "provider", "x"]),
            _field_values,
            max_size=4,
        ).map(lambda changes: {**base, **changes})
    ),
    st.dictionaries(_text, _field_values, max_size=4),
)
_paths = st.one_of(
    st.just("/sessions"),
    st.sampled_from([UNKNOWN_ID, "x", "%00", "..", UNKNOWN_ID.upper()]).map(
        lambda session_id: f"/sessions/{session_id}"
    ),
    st.text(alphabet="abc0123456789-", min_size=1, max_size=40).map(lambda s: f"/sessions/{s}"),
)
_queries = st.dictionaries(
    st.sampled_from(["helpdesk", "ticketId", "status", "since", "limit", "cursor", "refresh", "q"]),
    st.one_of(
        _text,
        st.sampled_from(["zendesk", "1001", "pending", "true", "20", "2026-11-25T12:00:00Z"]),
    ),
    max_size=4,
)
_auth = st.sampled_from([f"Bearer {TOKEN}", f"Bearer {TOKEN}", None, "Bearer nope", ""])


@settings(
    max_examples=EXAMPLES,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"]),
    path=_paths,
    query=_queries,
    body=_bodies,
    key=st.one_of(st.none(), st.sampled_from(["k1", "k2"]), _text),
    authorization=_auth,
)
def test_no_input_gives_a_5xx_or_an_undocumented_answer(
    env: dict[str, str],
    clock: Clock,
    bugpilot: BugpilotSimulator,
    method: str,
    path: str,
    query: dict[str, str],
    body: dict[str, Any],
    key: str | None,
    authorization: str | None,
) -> None:
    bugpilot.connect_user("user-42")
    api = Api(runtime_with(env, SESSIONS_API_TOKEN=TOKEN, SESSIONS_API_AUTH="token"), clock)
    api.token = None
    headers = {} if authorization is None else {"Authorization": authorization}
    if key is not None and key.isascii() and key.isprintable():
        headers["Idempotency-Key"] = key
    # `Api.call` validates every answer against the document (status and body).
    reply = api.call(method, path, raw=json.dumps(body).encode(), query=query, headers=headers)
    # Nothing is down here, so not even a 503.
    assert reply.status < 500, reply
