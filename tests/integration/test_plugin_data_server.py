"""The server's side of plugin data on SQLite and PostgreSQL: schemas, validation, scope, numbers.

Pushed through the real HTTP API (ThreadServer) with the Qt-free protocol client of the harness.
"""

from __future__ import annotations

from crm_desktop.domain.ids import uuid7
from crm_desktop.sync import protocol as p

SCHEMA = {"type": "object", "additionalProperties": False, "required": ["title", "issued"],
          "properties": {"title": {"type": "string", "maxLength": 50, "x-crm-kind": "text"},
                         "issued": {"type": "boolean", "x-crm-kind": "bool"},
                         "series": {"type": ["string", "null"], "x-crm-kind": "text"},
                         "seq": {"type": ["integer", "null"], "x-crm-kind": "int",
                                 "x-crm-sequence": {"name": "bills.docs", "when": "issued", "per": "series"}},
                         "owner_id": {"type": ["string", "null"]}, "team_id": {"type": ["string", "null"]}}}


def _publish(client, schema=SCHEMA, version="1.0.0"):
    return client.http.put(f"{p.API_PREFIX}/sync/schemas", headers={"Authorization": f"Bearer {client.access}"},
                           json={"schemas": [{"entity": "bills.docs", "plugin": "bills", "plugin_version": version,
                                              "schema": schema}]})


def _send(client, record_id, op, fields, base_version=0):
    mutation = p.Mutation(mutation_id=client.next_mutation_id, entity="bills.docs", id=record_id, op=p.Op(op),
                          fields=fields, base_version=base_version)
    client.next_mutation_id += 1
    [result] = client.push_raw([mutation]).results
    return result


def _create(client, record_id, **fields):
    return _send(client, record_id, "create", {k: (None, v) for k, v in fields.items()})


def _pull_all(client):
    changes, cursor = [], p.START_CURSOR
    while True:
        page = p.PullResponse.model_validate(client.call("GET", "/sync/pull", params={"cursor": cursor}))
        changes += page.changes
        cursor = page.cursor
        if not page.has_more:
            return changes


def test_plugin_records_are_validated_scoped_and_numbered_without_gaps(client_factory):
    alice, bob, carol = client_factory("alice"), client_factory("bob"), client_factory("carol")
    doc = uuid7()
    refused = _create(alice, doc, title="Before any schema", issued=False)
    assert refused.status == "rejected" and "no schema" in refused.message

    bad = _publish(alice, {"type": "object", "properties": {"id": {"type": "string"}}})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_schema"
    assert [r["status"] for r in _publish(alice).json()["results"]] == ["stored"]
    assert [r["status"] for r in _publish(bob, version="0.9.0").json()["results"]] == ["kept_newer"]

    too_long = _create(alice, uuid7(), title="x" * 51, issued=False)
    assert too_long.status == "rejected" and "title" in too_long.message
    unknown = _create(alice, uuid7(), title="ok", issued=False, colour="red")
    assert unknown.status == "rejected" and "colour" in unknown.message
    forged = _create(alice, uuid7(), title="ok", issued=True, series="inv:2026", seq=99)
    assert forged.status == "rejected" and "numbered by the server" in forged.message

    # two reps issue offline; the server numbers them in push order, per series
    a1, b1, a2 = uuid7(), uuid7(), uuid7()
    assert _create(alice, a1, title="A1", issued=True, series="inv:2026").status == "applied"
    assert _create(bob, b1, title="B1", issued=True, series="inv:2026").status == "applied"
    assert _create(alice, doc, title="Draft", issued=False).status == "applied"
    assert _create(alice, a2, title="Q1", issued=True, series="quote:2026").status == "applied"
    records = {c.id: c.record for c in _pull_all(alice) if c.kind == "upsert"}
    assert (records[a1]["seq"], records[b1]["seq"], records[a2]["seq"], records[doc].get("seq")) == (1, 2, 1, None)

    # a numbered record is never deleted; a draft is
    deleted = _send(alice, a1, "delete", {}, 1)
    assert deleted.status == "rejected" and "void it instead" in deleted.message
    assert _send(alice, doc, "delete", {}, 1).status == "applied"
    # scope: carol (team west) sees none of team east's documents
    assert [c for c in _pull_all(carol) if c.entity == "bills.docs"] == []
