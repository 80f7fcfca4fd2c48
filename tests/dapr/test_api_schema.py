"""The HTTP API against its own OpenAPI schema, by property-based testing (schemathesis).

Every operation of the API app's schema, as the running deployment serves it, gets a
fixed number of generated requests, valid and invalid, derandomized so that a run
repeats exactly, under every check schemathesis has for an OpenAPI schema: no response
may be a 5xx; every 4xx is a problem description (``application/problem+json`` with
``title``, ``status`` and ``detail``); status codes, content types, headers and bodies
conform to the schema; invalid data is refused and valid data accepted (but for the
refusals a schema cannot express, ``SEMANTIC_REFUSALS``); a missing required header,
an unsupported method (405 with ``Allow``), a request without the token and a resource
used after it is gone are answered as they should be.

The cases come from schemathesis' Hypothesis strategies (fuzzing, positive and negative)
under a test per operation: its pytest loader for a schema served by a fixture
(``schemathesis.pytest.from_fixture``) does not run on pytest 9.2.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import CheckContext, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ensure_resource_availability,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
    use_after_free,
)

from tests.dapr.conftest import Deployment

Case = schemathesis.Case[Any]

MAX_EXAMPLES = 30

# the operations fuzzed; a new operation of the schema fails the test until listed here
# or in EXCLUDED with the reason
OPERATIONS = [
    "GET /runs",
    "POST /runs",
    "GET /runs/{run_id}",
    "POST /runs/{run_id}/responses",
    "POST /runs/{run_id}/cancel",
    "GET /runs/{run_id}/checkpoints",
    "GET /checkpoints/{checkpoint_id}",
    "GET /runs/{run_id}/topology",
    "GET /hosts",
    "GET /workflows",
]
# (the sidecar's routes and the probes are not in the schema: tests/unit/test_app_edge.py)
EXCLUDED = {
    "GET /runs/{run_id}/events": "a stream that ends only with its run: test_runtime.py checks "
    "its 404 and 422 problems by hand",
}
# generated run starts name these (or keep the generated name): real runs of the test
# workflows, cancelled afterwards ("slow" is left out: it sleeps as long as its input says)
WORKFLOWS = ["ping", "fan", "hitl", "echo", "unplaceable"]
FACTORY = "tests.dapr.workflows:orders"
"""A served factory the generated run starts name too, with parameters."""
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)
STEER = st.sampled_from([True, False])  # more often than not (it shrinks to True)


def problem_details(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """A 4xx answer is a problem description (RFC 9457) with title, status and detail."""
    if 400 <= response.status_code < 500:
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.startswith("application/problem+json"), (
            f"{response.status_code} with content type {content_type!r}: {response.text[:200]}"
        )
        body = response.json()
        assert isinstance(body, dict), body
        assert body.get("status") == response.status_code, body
        assert isinstance(body.get("title"), str) and body["title"], body
        assert isinstance(body.get("detail"), str), body
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    missing_required_header,
    unsupported_method,
    allow_header_conformance,
    use_after_free,
    ensure_resource_availability,
    ignored_auth,
    problem_details,
]


# Schema-valid requests the API may still refuse, for what a JSON schema cannot say: a
# start must name a workflow, a factory or a checkpoint and its input must fit the
# workflow's start executor (422), a new run needs an input, a factory may refuse its
# parameters, a checkpoint or codec form may not decode (400); a response must fit the
# type its pending request asks for (400). Every such refusal is still a problem
# description (problem_details).
SEMANTIC_REFUSALS = {
    "POST /runs": ["400", "422"],
    "POST /runs/{run_id}/responses": ["400"],
}
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
"""What positive data may get by default (schemathesis' own default list)."""


@pytest.fixture(scope="module")
def api_schema(deployment: Deployment) -> schemathesis.BaseSchema:
    config = schemathesis.config.SchemathesisConfig.from_dict(
        {
            "operations": [
                {
                    "include-name": label,
                    "checks": {
                        "positive_data_acceptance": {"expected-statuses": [*ACCEPTED, *extra]}
                    },
                }
                for label, extra in SEMANTIC_REFUSALS.items()
            ]
        }
    )
    return schemathesis.openapi.from_url(
        f"{deployment.url}/openapi.json", config=config, headers=deployment.headers, timeout=10
    )


@dataclass
class Known:
    """Runs and checkpoints the generated requests name besides generated ids."""

    run_ids: list[str]
    checkpoint_ids: list[str]
    request_ids: list[str]
    started: set[str] = field(default_factory=set)
    """Ids of the runs the generated requests started: cancelled, and waited for."""


def _wait_for_end(client: httpx.Client, run_id: str) -> None:
    # the event stream ends with the run's final status
    with client.stream("GET", f"/runs/{run_id}/events") as events:
        kinds = [line for line in events.iter_lines() if line.startswith("event:")]
    assert kinds[-1] == "event: status", run_id


@pytest.fixture(scope="module")
def known(deployment: Deployment) -> Iterator[Known]:
    with httpx.Client(base_url=deployment.url, headers=deployment.headers, timeout=30) as client:
        done = client.post("/runs", json={"workflow": "ping", "input": 0}).json()["run_id"]
        _wait_for_end(client, done)
        waiting = client.post("/runs", json={"workflow": "hitl", "input": "x"}).json()["run_id"]
        _wait_for_end(client, waiting)
        checkpoints = client.get(f"/runs/{done}/checkpoints").json()
        assert checkpoints, done
        pending = client.get(f"/runs/{waiting}").json()["pending_requests"]
        known = Known([done, waiting], checkpoints, [p["request_id"] for p in pending])
        yield known
        for run_id in sorted({waiting, *known.started}):
            cancel = client.post(f"/runs/{run_id}/cancel")
            # a started run may have finished by now: nothing to cancel then
            assert cancel.status_code == 202 or (
                cancel.status_code == 409 and cancel.json()["run_status"] != "running"
            ), cancel.text
        for run_id in sorted({waiting, *known.started}):
            _wait_for_end(client, run_id)


def test_every_operation_is_fuzzed_or_excluded_with_a_reason(
    api_schema: schemathesis.BaseSchema,
) -> None:
    operations = list(api_schema.get_all_operations())
    assert all(isinstance(op, Ok) for op in operations), operations
    labels = [op.ok().label for op in operations if isinstance(op, Ok)]
    assert sorted(labels) == sorted([*OPERATIONS, *EXCLUDED])


def _steered(label: str, cases: st.SearchStrategy[Case], known: Known) -> st.SearchStrategy[Case]:
    """Valid requests that reach past the lookups: ids of existing runs and checkpoints,
    new runs of served workflows with inputs they may accept (or the generated ones)."""

    def steer(draw: st.DrawFn) -> Case:
        case = draw(cases)
        params = case.path_parameters or {}
        if "run_id" in params and draw(st.booleans()):
            params["run_id"] = draw(st.sampled_from(known.run_ids))
        if "checkpoint_id" in params and draw(st.booleans()):
            params["checkpoint_id"] = draw(st.sampled_from(known.checkpoint_ids))
        if label == "POST /runs/{run_id}/responses" and draw(st.booleans()):
            case.body = {"responses": {draw(st.sampled_from(known.request_ids)): draw(JSON)}}
        if label == "POST /runs" and isinstance(case.body, dict) and draw(STEER):
            body = case.body
            body["workflow"] = draw(st.sampled_from(WORKFLOWS))
            for key in ("factory", "params", "state", "checkpoint", "checkpoint_id", "encoding"):
                body.pop(key, None)
            if draw(st.booleans()):
                body["checkpoint_id"] = draw(st.sampled_from(known.checkpoint_ids))
            elif draw(STEER):
                if not draw(STEER):
                    del body["workflow"]
                    body["factory"] = FACTORY
                    body["params"] = {"limit": draw(st.integers(0, 5))}
                order = st.fixed_dictionaries({"item": st.text(), "quantity": st.integers()})
                value: Any = draw(st.integers() | st.text() | st.lists(st.text()) | order)
                body["input"] = value
        return case

    return st.composite(steer)()


@pytest.mark.parametrize("label", OPERATIONS)
def test_operation_conforms_to_the_schema(
    label: str, api_schema: schemathesis.BaseSchema, deployment: Deployment, known: Known
) -> None:
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None
    positive = _steered(label, operation.as_strategy(GenerationMode.POSITIVE), known)
    cases = positive | operation.as_strategy(GenerationMode.NEGATIVE)

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def check(case: Case) -> None:
        response = case.call_and_validate(headers=deployment.headers, checks=CHECKS, timeout=10)
        if label == "POST /runs" and response.status_code == 201:
            known.started.add(response.json()["run_id"])

    check()
