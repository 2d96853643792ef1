"""Schemathesis over the sync server's OpenAPI: no request, valid or not, gets a server error.

A real ``crm-server run`` on 127.0.0.1 (a temp SQLite file) serves ``/openapi.json``. An admin and
a rep (in a team) are made, the rep signs in from a device, and every operation of the schema is
fuzzed with its bearer token and the ``X-CRM-Sync-Protocol: 1`` header: inputs that fit the schema
(positive) and inputs that break it (negative), a bounded number of each. The only check is
schemathesis's ``not_a_server_error``: bad input must be a clear 4xx, never a 5xx.

Left out, and why:
- ``GET /api/v1/sync/events`` is a server-sent event stream that never ends on its own; fuzzing it
  would only hold connections open (tests/integration/sync/test_sync_worker.py and the nudge
  tests cover it).
- ``/admin`` (the HTML console) and ``/healthz`` are not in the OpenAPI (``include_in_schema=False``).
- ``POST /api/v1/auth/logout`` runs last, with a token of its own, so it does not sign the rep out
  before the other operations are fuzzed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.core.failures import FailureGroup  # noqa: E402

from crm_desktop.domain.ids import uuid7  # noqa: E402
from crm_desktop.sync import protocol as p  # noqa: E402
from sync_harness import REPO, admin_setup, free_port, wait_until  # noqa: E402

pytestmark = pytest.mark.slow

#: Examples per operation and generation mode; the whole run stays well under 90 s on 2 busy cores.
MAX_EXAMPLES = int(os.environ.get("CRM_SCHEMATHESIS_EXAMPLES", "25"))
#: Operations that cannot be fuzzed sensibly (see the module docstring).
EXCLUDED = {("GET", f"{p.API_PREFIX}/sync/events")}
TITLE_FIELDS = {"name", "last_name", "title", "subject", "kind"}
LAST = ("POST", f"{p.API_PREFIX}/auth/logout")


@pytest.fixture(scope="module")
def live_server():
    """``crm-server run`` on a free loopback port over a fresh SQLite file; its log kept for failures."""
    with tempfile.TemporaryDirectory(prefix="crm-schemathesis-") as tmp:
        db_url = f"sqlite:///{Path(tmp) / 'server.db'}"
        admin_setup(db_url, {"root": ("admin", []), "alice": ("rep", ["east"])}, ["east"])
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log_path = Path(tmp) / "server.log"
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "crm_server", "--db", db_url, "run", "--host", "127.0.0.1",
                 "--port", str(port), "--log-level", "warning"],
                stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)

            def up() -> bool:
                if proc.poll() is not None:
                    raise RuntimeError(f"crm-server exited: {log_path.read_text()[-2000:]}")
                try:
                    return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            try:
                wait_until(up, timeout=60, interval=0.1)
                yield url, log_path
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _shorten(text: str, limit: int = 3000) -> str:
    return text if len(text) <= limit else text[:limit] + f" ... [{len(text) - limit} more characters]"


def _sign_in(url: str, username: str) -> str:
    response = httpx.post(f"{url}{p.API_PREFIX}/auth/login", headers=p.PROTOCOL_HEADERS, timeout=30, json={
        "username": username, "password": f"password-{username}", "device_id": uuid7(),
        "device_name": f"schemathesis {username}"})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def test_no_operation_of_the_openapi_answers_a_server_error(live_server):
    url, log_path = live_server
    rep_token = _sign_in(url, "alice")
    logout_token = _sign_in(url, "alice")
    assert _sign_in(url, "root")  # the admin signs in too (a second device, a second role)

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    keyed = {(op.method.upper(), op.path): op for op in operations}
    assert LAST in keyed and (f"{p.API_PREFIX}/sync/push" in {path for _, path in keyed})
    order = sorted((k for k in keyed if k not in EXCLUDED), key=lambda k: (k == LAST, k[1], k[0]))

    failures: list[str] = []
    ran: dict[str, int] = {}
    started = time.monotonic()
    for key in order:
        operation = keyed[key]
        token = logout_token if key == LAST else rep_token
        headers = {"Authorization": f"Bearer {token}", **p.PROTOCOL_HEADERS}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            label = f"{operation.label} [{mode.value}]"
            calls = 0

            @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case):
                nonlocal calls
                calls += 1
                # a schema-breaking case may carry headers of its own: ours (auth, protocol) win
                case.headers = {**(case.headers or {}), **headers}
                case.call_and_validate(base_url=url, checks=[not_a_server_error], timeout=30)

            try:
                fuzz()
            except (Exception, FailureGroup) as exc:  # noqa: BLE001 - a report per operation, then one assertion
                failures.append(f"{label}: {_shorten(str(exc))}")
            ran[label] = calls
    elapsed = time.monotonic() - started

    summary = f"{sum(ran.values())} requests over {len(ran)} operation/mode pairs in {elapsed:.1f} s"
    print(summary)
    assert not failures, (summary + "\n\n" + "\n\n".join(failures)
                          + "\n\nserver log (tail):\n" + log_path.read_text()[-6000:])
    assert all(ran.values()), ran


def test_push_with_the_protocols_own_entities_and_fields_answers_no_server_error(live_server):
    """Schema-shaped fuzzing rarely names a real entity or field, so push also gets mutations of the
    pushable entities with their real field names (and a small pool of record ids, so creates,
    edits and deletes meet), each field set to an arbitrary JSON value: every one must be answered
    applied, conflict or rejected, never a 5xx."""
    from hypothesis import strategies as st

    from crm_desktop.domain import record_fields

    url, log_path = live_server
    # the rep, and the admin (who may also change pipelines and stages and sees every team)
    tokens = [_sign_in(url, "alice"), _sign_in(url, "root")]
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operation = schema[f"{p.API_PREFIX}/sync/push"]["POST"]

    ids = [uuid7() for _ in range(6)]
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
                        st.sampled_from(ids + ["", "EUR", "2024-02-30", "2024-01-01T10:00:00Z", "a@b.c", "open",
                                               "won", "#ff0000", "+1 202 555 0100", "-1"]))
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(max_size=5), inner, max_size=3), max_leaves=6)
    entities = sorted(p.PUSHABLE_ENTITIES)
    words = st.text("abcdefgh XYZ", min_size=1, max_size=12).map(str.strip).filter(bool)

    @st.composite
    def mutation(draw):
        entity = draw(st.sampled_from(entities))
        op = draw(st.sampled_from(list(p.Op)))
        names = sorted(record_fields.field_rules(entity))
        fields = {} if op is p.Op.DELETE else draw(st.dictionaries(
            st.sampled_from(names), st.tuples(values, values), max_size=3))
        if op is not p.Op.DELETE and draw(st.booleans()):  # mostly well-formed: a name a create needs
            for name in TITLE_FIELDS.intersection(names):
                fields[name] = [None, draw(words)]
        return {"entity": entity, "id": draw(st.sampled_from(ids)), "op": op.value, "base_version":
                draw(st.integers(0, 5)), "fields": {k: list(v) for k, v in fields.items()}}

    next_id = 0
    statuses: dict[str, int] = {}

    @settings(max_examples=4 * MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(batch=st.lists(mutation(), min_size=1, max_size=5), as_admin=st.booleans())
    def fuzz(batch, as_admin):
        nonlocal next_id
        for m in batch:
            next_id += 1
            m["mutation_id"] = next_id
        headers = {"Authorization": f"Bearer {tokens[as_admin]}", **p.PROTOCOL_HEADERS}
        case = operation.Case(body={"mutations": batch}, media_type="application/json", headers=headers)
        response = case.call_and_validate(base_url=url, checks=[not_a_server_error], timeout=30)
        if response.status_code == 200:
            for result in response.json()["results"]:
                statuses[result["status"]] = statuses.get(result["status"], 0) + 1

    try:
        fuzz()
    except (Exception, FailureGroup) as exc:  # noqa: BLE001
        pytest.fail(f"{_shorten(str(exc))}\n\nserver log (tail):\n{log_path.read_text()[-6000:]}")
    print("push outcomes:", statuses)
    assert statuses.get("applied") and statuses.get("rejected"), statuses  # the fuzz reached both paths


def test_a_pending_count_header_that_is_not_ascii_digits_is_ignored(live_server):
    """Found by reading the handler the fuzz does not reach (the header is not in the schema):
    "²" passes str.isdigit() but int() refuses it, which used to be a 500 on push and pull."""
    url, _log = live_server
    headers = {"Authorization": f"Bearer {_sign_in(url, 'alice')}", **p.PROTOCOL_HEADERS,
               p.PENDING_HEADER: "\u00b2".encode("latin-1")}
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.post(f"{p.API_PREFIX}/sync/push", json={"mutations": []}, headers=headers).status_code == 200
        assert http.get(f"{p.API_PREFIX}/sync/pull", headers=headers).status_code == 200
