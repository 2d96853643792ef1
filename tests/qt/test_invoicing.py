"""The invoicing plugin in a headless host: deal -> quote -> invoice -> PDF, the panel and editor
offscreen, the won-deal offer, exact money, uninstall with and without --drop-data, migrations."""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "plugins" / "invoicing"
SHOTS = os.environ.get("CRM_INVOICING_SHOTS")  # a folder: save the panel and editor PNGs there


def mod(name):
    return sys.modules[f"crm_plugins.invoicing.{name}"]


@pytest.fixture
def invoicing(crm_plugin, qapp, tmp_path):
    from PySide6.QtGui import QColor, QImage

    logo = tmp_path / "logo.png"
    image = QImage(120, 40, QImage.Format.Format_RGB32)
    image.fill(QColor("#1d4ed8"))
    image.save(str(logo))
    host, ctx = crm_plugin(PLUGIN, settings={"companyName": "Northwind Consulting",
                                             "address": "Hafenstr. 5 / 20457 Hamburg / Germany",
                                             "taxRate": 19, "logoFile": str(logo), "paymentTermsDays": 30})
    assert host.records["invoicing"].state.value == "active", host.records["invoicing"].error
    return host, ctx, mod("service").InvoicingService(ctx)


def pdf_text(path: Path) -> str:
    from pypdf import PdfReader

    # pypdf separates words with tabs where Qt placed them one by one: compare word by word
    return " ".join(" ".join(page.extract_text().split()) for page in PdfReader(str(path)).pages)


def test_quote_from_a_deal_becomes_an_invoice_and_its_pdf_says_so(invoicing, tmp_path):
    host, ctx, svc = invoicing
    core = host.core.services
    acme = core.companies.create(name="Acme GmbH", street="Alexanderplatz 1", postal_code="10178", city="Berlin")
    ada = core.contacts.create(first_name="Ada", last_name="Lovelace", company_id=acme.id)
    deal = core.deals.create(title="Website relaunch", company_id=acme.id, contact_id=ada.id, amount_cents=1_250_000)

    [action] = [a for a in host.record_actions("invoicing", "deal") if a.title == "Create quote"]
    [quote_id] = action.callback(ctx, [deal.id])
    quote = svc.get(quote_id)
    assert (quote.kind, quote.status, quote.number, quote.company_id) == ("quote", "draft", "draft", acme.id)
    assert [(l.description, l.unit_price, l.tax_rate) for l in quote.lines] == [
        ("Website relaunch", Decimal("12500"), Decimal("19"))]
    assert (quote.net_total, quote.tax_total, quote.gross_total) == (
        Decimal("12500.00"), Decimal("2375.00"), Decimal("14875.00"))
    svc.issue(quote_id)

    panel = host.panels("invoicing")[0].factory(None)
    row = [v.id for v in panel.views].index(quote_id)
    panel.table.selectRow(row)
    assert panel.buttons["to_invoice"].isEnabled()
    panel.buttons["to_invoice"].click()
    [invoice] = [v for v in panel.views if v.kind == "invoice"]
    assert invoice.source_id == quote_id and invoice.gross_total == Decimal("14875.00")
    svc.issue(invoice.id, today=date(2026, 3, 2))
    assert svc.get(invoice.id).due_date == date(2026, 4, 1)  # 30 days of payment terms

    # Export PDF…: the host asks where (ctx.ui.save_file) and writes the file; the plugin opens none
    from crm_desktop.ui.plugins.ui_facade import ui_factory

    class Window:
        status: list = []

        def show_status(self, text, timeout_ms=4000):
            self.status.append(text)

    host.set_ui_factory(ui_factory(Window(), host))
    asked = []
    ctx.ui.ask_save_path = lambda parent, title, start, filters: (
        asked.append((title, Path(start).name, filters)) or (str(tmp_path / "invoice"), filters))
    panel.table.selectRow([v.id for v in panel.views].index(invoice.id))
    panel.buttons["pdf"].click()
    number = svc.get(invoice.id).number
    assert asked == [(f"Export invoice {number} as PDF", f"{number}.pdf", "PDF document (*.pdf)")]
    out = tmp_path / "invoice.pdf"
    assert panel.message.text() == f"Saved {out}" and Window.status == []
    text = pdf_text(out)
    for expected in ("Northwind Consulting", "Hafenstr. 5", "20457 Hamburg", "Acme GmbH", "Attn. Ada Lovelace",
                     "10178 Berlin", "Invoice", "Website relaunch", "12,500.00 EUR", "Tax: 2,375.00 EUR",
                     "Total: 14,875.00 EUR", "Due: 2026-04-01"):
        assert expected in text, (expected, text)
    from pypdf import PdfReader

    assert PdfReader(str(out)).pages[0].images, "the logo is in the PDF"
    panel.deleteLater()


def test_money_is_exact_and_rounded_per_line():
    sys.path.insert(0, str(PLUGIN.parent))
    try:
        from importlib import import_module

        money = import_module("invoicing.money")
    finally:
        sys.path.remove(str(PLUGIN.parent))
    a = money.line_amounts(Decimal("3"), Decimal("0.335"), Decimal("0"), Decimal("19"))
    assert (a.net, a.tax) == (Decimal("1.01"), Decimal("0.19"))  # 1.005 -> 1.01 half up; 0.1919 -> 0.19
    b = money.line_amounts(Decimal("1"), Decimal("99.99"), Decimal("10"), Decimal("7"))
    assert (b.net, b.tax) == (Decimal("89.99"), Decimal("6.30"))
    t = money.totals([(a, Decimal("19")), (b, Decimal("7"))])
    assert (t.net, t.tax, t.gross) == (Decimal("91.00"), Decimal("6.49"), Decimal("97.49"))
    assert t.tax_by_rate == ((Decimal("7"), Decimal("6.30")), (Decimal("19"), Decimal("0.19")))
    with pytest.raises(ValueError, match="'12,3,4' is not a number"):
        money.parse_amount("12,3,4", "unit price")


def test_panel_filters_totals_and_overdue_highlight_and_editor(invoicing, qtbot):
    from PySide6.QtGui import QColor

    host, ctx, svc = invoicing
    acme = host.core.services.companies.create(name="Acme GmbH")
    LineInput = mod("service").LineInput
    late = svc.create("invoice", [LineInput("Audit", Decimal("1"), Decimal("1000"), Decimal("19"))],
                      title="Security audit", company_id=acme.id)
    svc.issue(late, today=date.today() - timedelta(days=60))
    svc.create("quote", [LineInput("Workshop", Decimal("2"), Decimal("800"), Decimal("19"))], title="Workshop days",
               company_id=acme.id)
    svc.add_product("Support hour", "95.00")
    panel = host.panels("invoicing")[0].factory(None)
    qtbot.addWidget(panel)
    panel.resize(1000, 420)
    assert len(panel.views) == 2
    row = [v.id for v in panel.views].index(late)
    assert panel.table.item(row, 4).text() == "Overdue"
    assert panel.table.item(row, 0).background().color() == QColor("#fde2e1")
    assert "1 overdue: 1,190.00 EUR" in panel.totals.text()
    panel.kind.setCurrentIndex(panel.kind.findData("quote"))
    assert [v.title for v in panel.views] == ["Workshop days"]
    panel.kind.setCurrentIndex(0)
    panel.status.setCurrentIndex(panel.status.findData("overdue"))
    assert [v.title for v in panel.views] == ["Security audit"]
    panel.status.setCurrentIndex(0)
    if SHOTS:
        panel.show()
        qtbot.waitExposed(panel)
        panel.grab().save(str(Path(SHOTS) / "invoicing-panel.png"))

    editor = mod("editor").DocumentEditor(ctx, svc, kind="quote")
    qtbot.addWidget(editor)
    editor.title.setText("Support package")
    editor.company.setCurrentIndex(editor.company.findData(acme.id))
    editor.add_product.click()
    editor.add_text.click()
    editor.lines.item(1, 0).setText("Onboarding (free text)")
    editor.lines.item(1, 2).setText("250")
    editor.lines.item(1, 3).setText("10")
    # 95.00 + 250 less 10 % = 225.00: net 320.00, tax 19 % 60.80
    assert "Net: 320.00 EUR" in editor.totals.text() and "Total: 380.80 EUR" in editor.totals.text()
    editor.lines.item(1, 2).setText("abc")
    assert "line 2 unit price: 'abc' is not a number" in editor.error.text()
    editor.lines.item(1, 2).setText("250")
    if SHOTS:
        editor.show()
        qtbot.waitExposed(editor)
        editor.grab().save(str(Path(SHOTS) / "invoicing-editor.png"))
    editor.save()
    saved = svc.get(editor.saved_id)
    assert [l.description for l in saved.lines] == ["Support hour", "Onboarding (free text)"]
    assert saved.company_id == acme.id and saved.gross_total == Decimal("380.80")


def test_a_won_deal_offers_to_create_the_invoice(invoicing, monkeypatch):
    from crm_desktop.plugin_api import Event

    host, ctx, svc = invoicing
    deal = host.core.services.deals.create(title="Fleet", amount_cents=50_000)
    asked = []
    monkeypatch.setattr(mod("facade_calls"), "confirm", lambda ctx, title, text, fallback=None: asked.append(text) or True)
    published = []
    ctx.events.subscribe("invoicing.", published.append)
    mod("invoicing").crm_event(ctx, Event("deal.stage_changed", {"id": deal.id, "status": "open"}, "core"))
    assert asked == []
    mod("invoicing").crm_event(ctx, Event("deal.stage_changed", {"id": deal.id, "status": "won"}, "core"))
    assert asked == ["The deal was won. Create the invoice now?"]
    [invoice] = svc.documents(kind="invoice")
    assert invoice.deal_id == deal.id and invoice.gross_total == Decimal("595.00")
    mod("invoicing").crm_event(ctx, Event("deal.stage_changed", {"id": deal.id, "status": "won"}, "core"))
    assert len(svc.documents(kind="invoice")) == 1  # offered once: it is invoiced already


def _tables(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


@pytest.mark.parametrize("drop", [False, True])
def test_uninstall_keeps_or_drops_its_data(crm_home, memory_keyring, drop):
    from crm_desktop.core import Core
    from crm_desktop.plugin_host.host import PluginHost

    shutil.copytree(PLUGIN, Path(crm_home.plugins_dir) / "invoicing",
                    ignore=shutil.ignore_patterns("__pycache__"))
    core = Core.open(crm_home)
    host = PluginHost(core, crm_home, role="admin", bundled_dir=None, system_dir=None)
    host.start()
    try:
        ctx = host.context("invoicing")
        mod("service").InvoicingService(ctx).add_product("Support hour", "95")
        host.uninstall("invoicing", drop_data=drop)
    finally:
        host.stop()
        core.close()
    tables = _tables(Path(crm_home.db_path))
    invoicing_tables = {"invoicing_products", "invoicing_documents", "invoicing_lines", "alembic_version_invoicing"}
    assert not (Path(crm_home.plugins_dir) / "invoicing").exists()
    if drop:
        assert not tables & invoicing_tables
        conn = sqlite3.connect(crm_home.db_path)
        assert conn.execute("SELECT count(*) FROM sync_plugin_tables WHERE plugin='invoicing'").fetchone() == (0,)
        conn.close()
    else:
        assert invoicing_tables <= tables
        conn = sqlite3.connect(crm_home.db_path)
        assert conn.execute("SELECT name FROM invoicing_products").fetchall() == [("Support hour",)]
        conn.close()


def test_migrations_upgrade_and_downgrade(tmp_path):
    from alembic import command
    from alembic.config import Config

    db = tmp_path / "plugin.sqlite3"
    config = Config()
    config.set_main_option("script_location", str(PLUGIN / "migrations"))
    config.set_main_option("sqlalchemy.url", f"sqlite:///{db}")
    config.attributes["version_table"] = "alembic_version_invoicing"
    command.upgrade(config, "head")
    assert {"invoicing_products", "invoicing_documents", "invoicing_lines"} <= _tables(db)
    command.downgrade(config, "base")
    assert not {"invoicing_products", "invoicing_documents", "invoicing_lines"} & _tables(db)
    command.upgrade(config, "head")
    assert "invoicing_lines" in _tables(db)
