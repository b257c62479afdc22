"""The API fuzzed from its own OpenAPI schema (schemathesis): no input may cause a 5xx, and
every answer is one the schema declares, in its status code and in its JSON content."""

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from basisdb import build_store
from basisdb.service import ServiceSettings, create_app

from .helpers import SMALL_RADII

pytestmark = pytest.mark.slow  # 60 examples of every route

# schemathesis collects its tests at import time, so the app and its store are made here
# (all 230 default settings at small radii: about a second) rather than in a fixture.
_DIRECTORY = tempfile.mkdtemp(prefix="basisdb-fuzz-")
atexit.register(shutil.rmtree, _DIRECTORY, ignore_errors=True)
_STORE = Path(_DIRECTORY) / "store.h5"
build_store(_STORE, radii=SMALL_RADII, workers=1, progress=False)
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(ServiceSettings(store=_STORE, max_positions=2000, max_body_bytes=1_000_000))
)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_is_declared_and_none_is_a_server_error(case):
    case.call_and_validate(checks=[not_a_server_error, status_code_conformance, response_schema_conformance])
