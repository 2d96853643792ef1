"""The invoicing plugin's tables: products, documents (quotes and invoices) and their lines.

All three are synced (``SyncedModel``): a team shares its catalogue, quotes and invoices.
Money is ``Decimal`` stored as text (:class:`Money`), never a float. Invoice numbers are
assigned by the sync server (``seq``: see docs/invoicing.md, "Numbers").
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import Boolean, Date, Integer, String, Text, TypeDecorator
from sqlalchemy.orm import Mapped, mapped_column

from crm_desktop.plugin_api import declarative_base_for
from crm_desktop.plugin_api.models import SyncedModel

Base = declarative_base_for("invoicing")

KINDS = ("quote", "invoice")
STATUSES = ("draft", "sent", "accepted", "paid", "overdue", "void")
#: JSON schema of a money value on the wire: a plain decimal text, at most 2 (prices: 4) places
MONEY_PATTERN = r"^-?[0-9]{1,12}(\.[0-9]{1,4})?$"


class Money(TypeDecorator):
    """A ``Decimal`` stored as its exact text (``"1234.50"``), so no float ever rounds it."""

    impl = String(24)
    cache_ok = True
    crm_kind = "text"

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return format(Decimal(value), "f")

    def process_result_value(self, value, dialect):
        return None if value is None else Decimal(value)


def _money(**kwargs):
    return mapped_column(Money, info={"json_schema": {"pattern": MONEY_PATTERN}}, **kwargs)


class Product(Base, SyncedModel):
    __tablename__ = "invoicing_products"

    name: Mapped[str] = mapped_column(String(200), info={"json_schema": {"minLength": 1}})
    unit_price: Mapped[Decimal] = _money(default=Decimal("0"))
    tax_rate: Mapped[Decimal] = _money(default=Decimal("0"))
    unit: Mapped[str | None] = mapped_column(String(20))


class Document(Base, SyncedModel):
    """A quote or an invoice. ``seq`` is the server's number (None until issued and synced)."""

    __tablename__ = "invoicing_documents"

    kind: Mapped[str] = mapped_column(String(10), info={"json_schema": {"enum": list(KINDS)}})
    status: Mapped[str] = mapped_column(String(10), default="draft",
                                        info={"json_schema": {"enum": list(STATUSES)}})
    title: Mapped[str | None] = mapped_column(String(300))
    company_id: Mapped[str | None] = mapped_column(String(36))
    contact_id: Mapped[str | None] = mapped_column(String(36))
    deal_id: Mapped[str | None] = mapped_column(String(36))
    #: the quote an invoice was made from
    source_id: Mapped[str | None] = mapped_column(String(36))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    issue_date: Mapped[date | None] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date)
    paid_date: Mapped[date | None] = mapped_column(Date)
    notes: Mapped[str | None] = mapped_column(Text)
    #: set when the document is issued (sent): the server numbers it at the next sync
    issued: Mapped[bool] = mapped_column(Boolean, default=False)
    #: the number series, e.g. "invoice:2026": numbers run per kind and per year
    series: Mapped[str | None] = mapped_column(String(40))
    #: the number format at issue time (settings), e.g. "INV-{year}-{seq:05}"
    number_format: Mapped[str | None] = mapped_column(String(60))
    seq: Mapped[int | None] = mapped_column(Integer, info={"json_schema": {
        "x-crm-sequence": {"name": "invoicing.documents", "when": "issued", "per": "series"}}})
    #: totals as computed from the lines when last saved (for lists without reading every line)
    net_total: Mapped[Decimal] = _money(default=Decimal("0"))
    tax_total: Mapped[Decimal] = _money(default=Decimal("0"))
    gross_total: Mapped[Decimal] = _money(default=Decimal("0"))


class Line(Base, SyncedModel):
    __tablename__ = "invoicing_lines"

    document_id: Mapped[str] = mapped_column(String(36), index=True)
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(500))
    product_id: Mapped[str | None] = mapped_column(String(36))
    quantity: Mapped[Decimal] = _money(default=Decimal("1"))
    unit_price: Mapped[Decimal] = _money(default=Decimal("0"))
    discount_pct: Mapped[Decimal] = _money(default=Decimal("0"))
    tax_rate: Mapped[Decimal] = _money(default=Decimal("0"))
