"""The API app's OpenAPI document types what its client routes answer: each success
names its model (``executor_host._views``), each error the one problem model; and the
answers go out as the same JSON bytes a route returning a ``dict`` sends.

The models are held to real answers in tests/dapr/test_api_views.py."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from executor_host import api
from executor_host._problems import PROBLEM_MEDIA_TYPE, problem_body
from executor_host._settings import Settings
from executor_host._views import ProblemDetails, TypedValue, json_response

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _document(**settings: Any) -> dict[str, Any]:
    app = api.create_app(Settings(app_id="superstep-api", workflows=(), **settings))
    return app.openapi()


def _operations(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def _untyped(schema: dict[str, Any]) -> bool:
    """An answer the document says nothing of: any JSON, or an object of any members."""
    if "$ref" in schema:
        return False
    if schema.get("type") == "array":
        return _untyped(schema.get("items", {}))
    if schema.get("type") == "object":
        return "properties" not in schema
    return "type" not in schema


@pytest.mark.parametrize("token", ["", "a-token"])
def test_every_client_route_names_the_model_of_its_success(token: str) -> None:
    document = _document(api_token=token)
    schemas = document["components"]["schemas"]
    untyped: list[str] = []
    for name, operation in _operations(document):
        successes = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
        assert successes, name
        for status, response in successes.items():
            for media_type, content in (response.get("content") or {}).items():
                schema = content["schema"]
                if _untyped(schema):
                    untyped.append(f"{name} {status} {media_type}: {schema}")
                ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
                if ref is not None:
                    assert ref.rpartition("/")[2] in schemas, (name, ref)
    assert untyped == []
    assert len(_operations(document)) == 11


def test_the_routes_name_their_models() -> None:
    document = _document()

    def success(path: str, method: str, status: str) -> dict[str, Any]:
        response: dict[str, Any] = document["paths"][path][method]["responses"][status]
        schema: dict[str, Any] = response["content"]["application/json"]["schema"]
        return schema

    def ref(name: str) -> dict[str, str]:
        return {"$ref": f"#/components/schemas/{name}"}

    assert success("/runs", "post", "201") == ref("RunStarted")
    assert success("/runs", "get", "200")["items"] == ref("RunSummary")
    assert success("/runs/{run_id}", "get", "200") == ref("RunView")
    assert success("/runs/{run_id}/responses", "post", "202") == ref("ResponsesAccepted")
    assert success("/runs/{run_id}/cancel", "post", "202") == ref("CancelAccepted")
    assert success("/runs/{run_id}/checkpoints", "get", "200")["items"] == {"type": "string"}
    assert success("/checkpoints/{checkpoint_id}", "get", "200") == ref("CheckpointView")
    assert success("/runs/{run_id}/topology", "get", "200") == ref("TopologyView")
    assert success("/hosts", "get", "200")["items"] == ref("HostView")
    assert success("/workflows", "get", "200")["items"] == ref("WorkflowInfo")
    events = document["paths"]["/runs/{run_id}/events"]["get"]["responses"]["200"]
    assert list(events["content"]) == ["text/event-stream"]
    started = document["paths"]["/runs"]["post"]["responses"]["201"]
    listed = document["paths"]["/runs"]["get"]["responses"]["200"]
    assert started["headers"]["Location"]["required"] is True
    assert listed["headers"]["X-Next-Cursor"]["required"] is False


def test_every_error_is_the_problem_model() -> None:
    document = _document(api_token="a-token")
    assert document["components"]["schemas"]["Problem"] == ProblemDetails.model_json_schema()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for name, operation in _operations(document):
        errors = {s: r for s, r in operation["responses"].items() if s[0] in "45"}
        assert "401" in errors, name
        for status, response in errors.items():
            assert response["content"] == {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}, (
                name,
                status,
            )


def test_a_problem_body_is_the_problem_model_with_its_added_members() -> None:
    body = problem_body(409, "Run already finished", "it is done", "/runs/r1/cancel", x=1)
    problem = ProblemDetails.model_validate(body)
    assert problem.model_dump() == body


@pytest.mark.parametrize(
    "content",
    [
        {"run_id": "r1", "created_at": 1764831718.123456, "big": 1e16, "small": 1e-7},
        [{"text": "é ✓ \U0001f600", "nested": {"list": [1, 2.5, None, True]}}],
        {"inf_free": -0.0, "max": 2**63, "float": math.pi},
    ],
)
def test_answers_go_out_as_the_json_of_a_route_returning_a_dict(content: Any) -> None:
    # what FastAPI sends for a route annotated -> dict[str, Any] (or a list of them)
    adapter = TypeAdapter(type(content))
    expected = adapter.dump_json(adapter.validate_python(content))
    response = json_response(content, 201, {"Location": "/runs/r1"})
    assert response.body == expected
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert response.headers["location"] == "/runs/r1"


def test_a_plain_value_is_its_type_and_its_value_only() -> None:
    assert TypedValue.model_validate({"type": "int", "value": 3}).value == 3
    with pytest.raises(ValueError, match="extra"):
        TypedValue.model_validate({"type": "int", "value": 3, "more": 1})


def test_the_http_api_page_names_every_schema_of_an_answer() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "http-api.md").read_text()
    named: set[str] = set()
    for _, operation in _operations(_document()):
        for response in operation["responses"].values():
            for content in (response.get("content") or {}).values():
                schema = content["schema"]
                ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
                if ref is not None:
                    named.add(ref.rpartition("/")[2])
    assert named >= {"RunView", "Problem"}
    assert {name for name in named if f"`{name}`" not in page} == set()


# what clients and generated clients hold on to: each operation's id, the statuses it
# answers (with the API token set) and its parameters (in: name)
OPERATIONS = {
    "POST /runs": ("start_run_runs_post", [201, 400, 401, 404, 409, 413, 422, 502, 503], []),
    "GET /runs": (
        "list_runs_runs_get",
        [200, 400, 401, 422],
        ["query: status", "query: workflow", "query: limit", "query: cursor", "query: offset"],
    ),
    "GET /runs/{run_id}": (
        "get_run_runs__run_id__get",
        [200, 400, 401, 404, 422],
        ["path: run_id", "query: encoding"],
    ),
    "GET /runs/{run_id}/events": (
        "run_events_runs__run_id__events_get",
        [200, 204, 400, 401, 404, 422],
        ["path: run_id", "query: after", "query: encoding", "header: Last-Event-ID"],
    ),
    "POST /runs/{run_id}/responses": (
        "answer_runs__run_id__responses_post",
        [202, 400, 401, 404, 413, 422, 502],
        ["path: run_id"],
    ),
    "POST /runs/{run_id}/cancel": (
        "cancel_runs__run_id__cancel_post",
        [202, 400, 401, 404, 409, 422, 502],
        ["path: run_id"],
    ),
    "GET /runs/{run_id}/checkpoints": (
        "checkpoints_runs__run_id__checkpoints_get",
        [200, 400, 401, 404, 422],
        ["path: run_id"],
    ),
    "GET /checkpoints/{checkpoint_id}": (
        "get_checkpoint_checkpoints__checkpoint_id__get",
        [200, 400, 401, 404, 422],
        ["path: checkpoint_id"],
    ),
    "GET /runs/{run_id}/topology": (
        "topology_runs__run_id__topology_get",
        [200, 400, 401, 404, 422],
        ["path: run_id"],
    ),
    "GET /hosts": ("hosts_hosts_get", [200, 400, 401], []),
    "GET /workflows": ("workflows_workflows_get", [200, 400, 401], []),
}


def test_the_operations_keep_their_ids_statuses_and_parameters() -> None:
    document = _document(api_token="a-token")
    found = {
        name: (
            operation["operationId"],
            sorted(int(status) for status in operation["responses"]),
            [f"{p['in']}: {p['name']}" for p in operation.get("parameters", [])],
        )
        for name, operation in _operations(document)
    }
    assert found == OPERATIONS
    assert list(found) == list(OPERATIONS)  # the document's order, as Swagger UI shows it
    # without the token, the same less the 401s
    for name, operation in _operations(_document()):
        statuses = sorted(int(status) for status in operation["responses"])
        assert statuses == [s for s in OPERATIONS[name][1] if s != 401], name
