"""The invoicing plugin on two laptops and a real server: shared invoices and gap-free numbers.

Numbers are given by the server when an issued document is pushed (x-crm-sequence in the
plugin's schema): two laptops issuing offline never take the same number, a crash mid-save
takes none, a deleted draft leaves no gap and an issued invoice cannot be deleted.
"""

from __future__ import annotations

import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from crm_desktop.plugin_api import ValidationError
from crm_desktop.plugin_host.host import PluginHost
from desktop_harness import clients, server  # noqa: F401  (fixtures)

PLUGIN = Path(__file__).resolve().parents[3] / "plugins" / "invoicing"
YEAR = date.today().year


@pytest.fixture
def laptops(clients):
    hosts = []

    def make(user: str):
        client = clients(user)
        host = PluginHost(client.core, client.home, role="rep", bundled_dir=None, system_dir=None,
                          extra_folders=(PLUGIN,))
        host.start()
        hosts.append(host)
        assert host.records["invoicing"].state.value == "active", host.records["invoicing"].error
        ctx = host.context("invoicing")
        return client, ctx, sys.modules["crm_plugins.invoicing.service"].InvoicingService(ctx)

    yield make
    for host in reversed(hosts):
        host.stop()


def line(text="Consulting", qty="2", price="450.00", rate="19"):
    from crm_plugins.invoicing.service import LineInput  # the plugin's package, once the host loaded it

    return LineInput(text, Decimal(qty), Decimal(price), Decimal(rate))


def test_invoice_made_on_one_laptop_appears_on_a_teammates_with_its_number(laptops):
    a, ctx_a, svc_a = laptops("alice")
    b, ctx_b, svc_b = laptops("bob")
    company = a.services.companies.create(name="Acme GmbH", city="Berlin")
    deal = a.services.deals.create(title="Website relaunch", company_id=company.id, amount_cents=1_250_000)
    quote_id = svc_a.quote_from_deal(deal.id)
    svc_a.issue(quote_id)
    invoice_id = svc_a.invoice_from_quote(quote_id)
    svc_a.issue(invoice_id)
    assert svc_a.get(invoice_id).number == "numbered at next sync"
    a.sync()
    a.sync()  # (the push numbered it; the pull brought the number back)
    mine = svc_a.get(invoice_id)
    assert mine.number.startswith(f"INV-{YEAR}-") and mine.seq is not None
    b.sync()
    theirs = svc_b.get(invoice_id)
    assert theirs.number == mine.number
    assert theirs.gross_total == Decimal("14875.00") and [l.description for l in theirs.lines] == ["Website relaunch"]
    assert theirs.source_id == quote_id and theirs.status == "sent"


def test_numbers_never_repeat_nor_leave_gaps_across_laptops_crashes_and_deletions(laptops):
    a, ctx_a, svc_a = laptops("alice")
    b, ctx_b, svc_b = laptops("bob")
    a.sync(); b.sync()
    start = max((d.seq or 0) for d in svc_a.documents(kind="invoice")) if svc_a.documents(kind="invoice") else 0

    # alice, offline: two invoices issued, a draft deleted, and a save that crashes half way
    first = svc_a.create("invoice", [line()])
    svc_a.issue(first)
    draft = svc_a.create("invoice", [line("Scrapped")])
    svc_a.delete(draft)
    Document = sys.modules["crm_plugins.invoicing.models"].Document
    with pytest.raises(RuntimeError):
        with ctx_a.transaction() as s:  # the app dies mid-save: nothing of it stays, no number is taken
            s.add(Document(kind="invoice", status="sent", issued=True, series=f"invoice:{YEAR}", currency="EUR"))
            s.flush()
            raise RuntimeError("power cut")
    second = svc_a.create("invoice", [line("Support", "1", "99.99")])
    svc_a.issue(second)
    # bob, offline too: one invoice issued
    bobs = svc_b.create("invoice", [line("Training", "3", "120")])
    svc_b.issue(bobs)

    b.sync(); a.sync(); b.sync(); a.sync()
    numbers = {doc_id: svc_a.get(doc_id).seq for doc_id in (first, second, bobs)}
    assert sorted(numbers.values()) == [start + 1, start + 2, start + 3], numbers  # no repeat, no gap
    assert svc_b.get(first).number == svc_a.get(first).number
    assert svc_a.get(first).number == f"INV-{YEAR}-{numbers[first]:05d}"

    # an issued invoice is voided, never deleted: its number stays taken and visible
    with pytest.raises(ValidationError, match="void it instead"):
        svc_a.delete(first)
    svc_a.set_status(first, "void")
    a.sync(); b.sync()
    assert svc_b.get(first).status == "void" and svc_b.get(first).seq == numbers[first]
