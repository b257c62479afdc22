"""The API fuzzed from its own OpenAPI schema (schemathesis): no input may cause a 5xx."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from service import ServiceSettings, create_app


@pytest.fixture(scope="module")
def api_schema(small_store):
    app = create_app(ServiceSettings(store=small_store, max_positions=2000, max_body_bytes=1_000_000))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_causes_a_server_error(case):
    case.call_and_validate(checks=[not_a_server_error])
