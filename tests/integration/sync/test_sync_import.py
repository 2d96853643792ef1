"""An import's records reach the server and another client (issue 8: the bulk path's compact
audit and outbox must not cost sync anything)."""

from __future__ import annotations

from crm_desktop.services.importer import import_file
from crm_desktop.sync import outbox
from desktop_harness import clients, server  # noqa: F401  (fixtures)

CSV = ("First Name;Last Name;E-mail;Phone;City;Company;Tags\n"
       "Łukasz;Müller;łukasz@bücher.de;+49 30 1234567;Köln;Alpen \"Süd\" GmbH;VIP, Fair\n"
       "Bo;Li;bo@example.com;;Wien;Alpen \"Süd\" GmbH;\n"
       "Cy;Ng;cy@example.com;;Graz;;Fair\n")


def _pending(client):
    with client.core.db.read_connection() as c:
        return outbox.pending(c.connection.driver_connection, 1000)


def test_imported_records_sync_with_their_values_tags_and_later_edits(clients, tmp_path):
    a, b = clients("alice"), clients("bob")
    path = tmp_path / "people.csv"
    path.write_text(CSV, encoding="utf-8", newline="")
    summary = import_file(a.services, "contacts", path)
    assert summary.created == 3 and summary.companies_created == 1
    people = {c.first_name: c for c in a.services.contacts.list().items}
    # edited and deleted offline, before the first push
    a.services.contacts.update(people["Bo"].id, city="Linz")
    a.services.contacts.delete(people["Cy"].id)
    report = a.sync()
    assert report.ok and report.rejected == 0 and report.conflicts == 0, report
    assert _pending(a) == []
    b.sync()
    lukasz = b.services.contacts.get(people["Łukasz"].id)
    assert (lukasz.last_name, lukasz.email, lukasz.city, lukasz.tags) == (
        "Müller", "łukasz@bücher.de", "Köln", ("Fair", "VIP"))
    assert b.services.companies.get(lukasz.company_id).name == 'Alpen "Süd" GmbH'
    assert b.services.contacts.get(people["Bo"].id).city == "Linz"
    assert b.services.contacts.find(people["Cy"].id) is None
    assert [c.first_name for c in b.services.contacts.search("Müller")] == ["Łukasz"]
    # the server's version came back to alice; nothing of the import is pushed twice
    a.sync()
    assert _pending(a) == [] and a.services.contacts.get(people["Łukasz"].id).tags == ("Fair", "VIP")
