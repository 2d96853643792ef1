"""Quotes and invoicing: hook implementations (docs/invoicing.md).

Publishes ``invoicing.invoice.created`` and ``invoicing.invoice.paid`` (plugins publish
only their own, prefixed events); listens to ``deal.stage_changed``: when a deal is won it
offers to create the invoice.
"""

from __future__ import annotations

from pathlib import Path

from crm_desktop.plugin_api import Panel, RecordAction, hookimpl

from . import facade_calls
from .service import InvoicingService


def service(ctx) -> InvoicingService:
    return InvoicingService(ctx)


def document_pdf(ctx, doc_id: str) -> bytes:
    """The PDF of a document, with the company, address and logo from the settings."""
    from .pdf import pdf_bytes

    svc = service(ctx)
    doc = svc.get(doc_id)
    customer = []
    company = facade_calls.get_company(ctx, doc.company_id)
    if company is not None:
        customer.append(company.name)
        customer.extend(p for p in (company.street, " ".join(x for x in (company.postal_code, company.city) if x),
                                    company.country) if p)
    contact = facade_calls.get_contact(ctx, doc.contact_id)
    if contact is not None:
        customer.insert(1 if customer else 0, f"Attn. {contact.display_name}")
    return pdf_bytes(doc, company_name=ctx.settings.get("companyName") or "",
                     address=ctx.settings.get("address") or "", customer=customer,
                     logo_file=ctx.settings.get("logoFile") or None, payment_days=svc.payment_days())


def export_document(ctx, doc_id: str) -> Path | None:
    """Ask the user where to save the document's PDF and save it there (``ctx.ui.save_file``: the host
    writes the file atomically); returns the file, or None (cancelled, or the host said why not)."""
    doc = service(ctx).get(doc_id)
    data = document_pdf(ctx, doc_id)
    title = f"Export {'invoice' if doc.kind == 'invoice' else 'quote'} {doc.number} as PDF"
    return facade_calls.save_file(ctx, title, f"{doc.number}.pdf", ["PDF document (*.pdf)"],
                                  lambda file: file.write(data))


def create_quote_for_deals(ctx, deal_ids: list[str]) -> list[str]:
    made = [service(ctx).quote_from_deal(deal_id) for deal_id in deal_ids]
    facade_calls.show_status(ctx, f"{len(made)} quote(s) created")
    return made


def create_invoice_for_deals(ctx, deal_ids: list[str]) -> list[str]:
    made = [service(ctx).invoice_from_deal(deal_id) for deal_id in deal_ids]
    facade_calls.show_status(ctx, f"{len(made)} invoice draft(s) created")
    return made


def _panel_factory(ctx):
    def make(parent):
        from .panel import InvoicingPanel

        return InvoicingPanel(ctx, parent)
    return make


@hookimpl
def crm_panels(ctx):
    return [Panel("invoicing", "Quotes & invoices", "/plugins/invoicing", _panel_factory(ctx))]


@hookimpl
def crm_record_actions(ctx, entity):
    if entity != "deal":
        return []
    return [RecordAction("create-quote", "Create quote", "deal", create_quote_for_deals, "deals:read"),
            RecordAction("create-invoice", "Create invoice", "deal", create_invoice_for_deals, "deals:read")]


@hookimpl
def crm_event(ctx, event):
    if event.name != "deal.stage_changed":
        return
    payload = event.payload or {}
    if payload.get("status") != "won" or not payload.get("id"):
        return
    deal_id = payload["id"]
    if any(d.deal_id == deal_id for d in service(ctx).documents(kind="invoice")):
        return  # already invoiced
    if facade_calls.confirm(ctx, "Deal won", "The deal was won. Create the invoice now?"):
        create_invoice_for_deals(ctx, [deal_id])
