"""Quotes and invoices: the use cases, over the plugin's own tables (``ctx.transaction()``).

Plain data in and out (:class:`DocumentView`), so the Qt panel never holds a session.
Numbers: a draft has none. Issuing a document (``issue``: draft -> sent) marks it for
numbering; the sync server gives it the next number of its series (``invoice:2026``) at the
next sync, in push order, so two laptops issuing offline never take the same number and a
crash mid-save (the transaction rolls back) consumes none. Only drafts can be deleted; an
issued document is voided and keeps its number, so the series has no gaps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Iterable

from crm_desktop.plugin_api import NotFound, ValidationError

from . import facade_calls
from .models import KINDS, STATUSES, Document, Line, Product
from .money import line_amounts, parse_amount, totals

DEFAULT_FORMATS = {"invoice": "INV-{year}-{seq:05}", "quote": "Q-{year}-{seq:05}"}
#: status changes a user may make (void is always possible for an issued document)
TRANSITIONS = {
    ("quote", "sent"): {"accepted", "void"},
    ("quote", "accepted"): {"void"},
    ("invoice", "sent"): {"paid", "overdue", "void"},
    ("invoice", "overdue"): {"paid", "void"},
}


@dataclass(frozen=True)
class LineInput:
    description: str
    quantity: Decimal = Decimal("1")
    unit_price: Decimal = Decimal("0")
    tax_rate: Decimal = Decimal("0")
    discount_pct: Decimal = Decimal("0")
    product_id: str | None = None


@dataclass(frozen=True)
class LineView:
    id: str
    position: int
    description: str
    quantity: Decimal
    unit_price: Decimal
    discount_pct: Decimal
    tax_rate: Decimal
    net: Decimal
    tax: Decimal
    product_id: str | None = None


@dataclass(frozen=True)
class DocumentView:
    id: str
    kind: str
    status: str
    number: str
    title: str | None
    company_id: str | None
    contact_id: str | None
    deal_id: str | None
    source_id: str | None
    currency: str
    issue_date: date | None
    due_date: date | None
    paid_date: date | None
    notes: str | None
    net_total: Decimal
    tax_total: Decimal
    gross_total: Decimal
    seq: int | None
    lines: tuple[LineView, ...] = field(default_factory=tuple)

    @property
    def overdue(self) -> bool:
        """An invoice sent and unpaid after its due date (shown as overdue even before it is marked)."""
        if self.kind != "invoice":
            return False
        if self.status == "overdue":
            return True
        return self.status == "sent" and self.due_date is not None and self.due_date < date.today()

    @property
    def display_status(self) -> str:
        return "overdue" if self.overdue else self.status


def format_number(fmt: str | None, kind: str, series: str | None, seq: int | None, issued: bool) -> str:
    """The printed number: ``INV-2026-00042``; "draft" or "numbered at sync" before the server numbered it."""
    if seq is None:
        return "numbered at next sync" if issued else "draft"
    year = int(series.rsplit(":", 1)[1]) if series and ":" in series else date.today().year
    try:
        return (fmt or DEFAULT_FORMATS[kind]).format(year=year, seq=seq)
    except (KeyError, IndexError, ValueError):
        return DEFAULT_FORMATS[kind].format(year=year, seq=seq)


def check_number_format(fmt: str) -> str:
    """A number format may use ``{year}`` and ``{seq}`` (with a format spec such as ``{seq:05}``), and must use seq."""
    try:
        sample = fmt.format(year=2026, seq=7)
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise ValidationError("numberFormat", fmt, f"only {{year}} and {{seq}} may be used ({exc})") from None
    if "{seq" not in fmt or len(sample) > 40:
        raise ValidationError("numberFormat", fmt, "must contain {seq} and give at most 40 characters, "
                                                   "e.g. INV-{year}-{seq:05}")
    return fmt


class InvoicingService:
    def __init__(self, ctx: Any):
        self.ctx = ctx

    # -- settings --------------------------------------------------------------------------

    def _setting(self, key: str, default: Any) -> Any:
        value = self.ctx.settings.get(key, default)
        return default if value in (None, "") else value

    def default_tax_rate(self) -> Decimal:
        return parse_amount(str(self._setting("taxRate", "19")), "taxRate")

    def payment_days(self) -> int:
        return int(self._setting("paymentTermsDays", 14))

    # -- products ----------------------------------------------------------------------------

    def add_product(self, name: str, unit_price: Decimal | str, tax_rate: Decimal | str | None = None,
                    unit: str | None = None) -> str:
        name = (name or "").strip()
        if not name:
            raise ValidationError("name", name, "a product needs a name", "product")
        with self.ctx.transaction() as s:
            product = Product(name=name, unit_price=parse_amount(unit_price, "unit price"),
                              tax_rate=self.default_tax_rate() if tax_rate is None else parse_amount(tax_rate,
                                                                                                  "tax rate"),
                              unit=unit)
            s.add(product)
            s.flush()
            return product.id

    def products(self) -> list[tuple[str, str, Decimal, Decimal]]:
        with self.ctx.db.session() as s:
            return [(p.id, p.name, p.unit_price, p.tax_rate) for p in
                    s.query(Product).filter(Product.deleted_at.is_(None)).order_by(Product.name)]

    def line_from_product(self, product_id: str, quantity: Decimal = Decimal("1")) -> LineInput:
        with self.ctx.db.session() as s:
            product = s.get(Product, product_id)
            if product is None or product.deleted_at is not None:
                raise NotFound("product", product_id)
            return LineInput(product.name, quantity, product.unit_price, product.tax_rate, Decimal("0"), product.id)

    # -- documents -----------------------------------------------------------------------------

    def create(self, kind: str, lines: Iterable[LineInput] = (), *, title: str | None = None,
               company_id: str | None = None, contact_id: str | None = None, deal_id: str | None = None,
               source_id: str | None = None, currency: str = "EUR", notes: str | None = None) -> str:
        if kind not in KINDS:
            raise ValidationError("kind", kind, f"must be one of {', '.join(KINDS)}", "document")
        with self.ctx.transaction() as s:
            doc = Document(kind=kind, status="draft", title=title, company_id=company_id, contact_id=contact_id,
                           deal_id=deal_id, source_id=source_id, currency=currency, notes=notes, issued=False)
            s.add(doc)
            s.flush()
            self._write_lines(s, doc, list(lines))
            doc_id = doc.id
        if kind == "invoice":
            self.ctx.events.publish("invoicing.invoice.created", {"id": doc_id, "deal_id": deal_id,
                                                                   "source_id": source_id})
        return doc_id

    def _write_lines(self, s, doc: Document, lines: list[LineInput]) -> None:
        for old in s.query(Line).filter(Line.document_id == doc.id, Line.deleted_at.is_(None)):
            old.deleted_at = datetime.now(timezone.utc)
        amounts = []
        for position, item in enumerate(lines, start=1):
            if not (item.description or "").strip():
                raise ValidationError("description", item.description, "must not be empty", f"line {position}")
            if item.quantity <= 0:
                raise ValidationError("quantity", str(item.quantity), "must be above 0", f"line {position}")
            if not Decimal(0) <= item.discount_pct <= Decimal(100):
                raise ValidationError("discount", str(item.discount_pct), "must be between 0 and 100 %", f"line {position}")
            if item.tax_rate < 0:
                raise ValidationError("tax rate", str(item.tax_rate), "must not be negative", f"line {position}")
            s.add(Line(document_id=doc.id, position=position, description=item.description.strip(),
                       product_id=item.product_id, quantity=item.quantity, unit_price=item.unit_price,
                       discount_pct=item.discount_pct, tax_rate=item.tax_rate))
            amounts.append((line_amounts(item.quantity, item.unit_price, item.discount_pct, item.tax_rate),
                            item.tax_rate))
        total = totals(amounts)
        doc.net_total, doc.tax_total, doc.gross_total = total.net, total.tax, total.gross

    def update(self, doc_id: str, *, lines: Iterable[LineInput] | None = None, **fields: Any) -> None:
        allowed = {"title", "company_id", "contact_id", "currency", "notes", "due_date"}
        unknown = sorted(set(fields) - allowed)
        if unknown:
            raise ValidationError(unknown[0], fields[unknown[0]], f"cannot be changed; changeable: {', '.join(sorted(allowed))}", "document")
        with self.ctx.transaction() as s:
            doc = self._doc(s, doc_id)
            if doc.status != "draft":
                raise ValidationError("status", doc.status, f"only drafts can be edited ({self._number(doc)})", doc.kind)
            for key, value in fields.items():
                setattr(doc, key, value)
            if lines is not None:
                self._write_lines(s, doc, list(lines))

    def _doc(self, s, doc_id: str) -> Document:
        doc = s.get(Document, doc_id)
        if doc is None or doc.deleted_at is not None:
            raise NotFound("document", doc_id)
        return doc

    @staticmethod
    def _number(doc: Document) -> str:
        return format_number(doc.number_format, doc.kind, doc.series, doc.seq, doc.issued)

    def issue(self, doc_id: str, today: date | None = None) -> None:
        """Draft -> sent: dated, due after the payment terms, marked for its number at the next sync."""
        today = today or date.today()
        with self.ctx.transaction() as s:
            doc = self._doc(s, doc_id)
            if doc.status != "draft":
                raise ValidationError("status", doc.status, f"only a draft can be issued ({self._number(doc)})", doc.kind)
            if not s.query(Line).filter(Line.document_id == doc.id, Line.deleted_at.is_(None)).count():
                raise ValidationError("lines", 0, "a document needs at least one line to be issued", doc.kind)
            fmt = self._setting("numberFormat" if doc.kind == "invoice" else "quoteNumberFormat", DEFAULT_FORMATS[doc.kind])
            doc.number_format = check_number_format(fmt)
            doc.status, doc.issued = "sent", True
            doc.issue_date = today
            doc.series = f"{doc.kind}:{today.year}"
            if doc.due_date is None:
                doc.due_date = today + timedelta(days=self.payment_days())

    def set_status(self, doc_id: str, status: str, today: date | None = None) -> None:
        if status not in STATUSES:
            raise ValidationError("status", status, f"must be one of {', '.join(STATUSES)}", "document")
        with self.ctx.transaction() as s:
            doc = self._doc(s, doc_id)
            if status not in TRANSITIONS.get((doc.kind, doc.status), set()):
                raise ValidationError("status", status, f"a {doc.status} {doc.kind} cannot become {status}", doc.kind)
            doc.status = status
            if status == "paid":
                doc.paid_date = today or date.today()
        if status == "paid":
            self.ctx.events.publish("invoicing.invoice.paid", {"id": doc_id})

    def mark_overdue(self, today: date | None = None) -> int:
        """Sent invoices past their due date become overdue; returns how many."""
        today = today or date.today()
        with self.ctx.transaction() as s:
            docs = s.query(Document).filter(Document.kind == "invoice", Document.status == "sent",
                                            Document.due_date < today, Document.deleted_at.is_(None)).all()
            for doc in docs:
                doc.status = "overdue"
            return len(docs)

    def delete(self, doc_id: str) -> None:
        """Delete a draft (it has no number). An issued document is voided instead, keeping its number."""
        with self.ctx.transaction() as s:
            doc = self._doc(s, doc_id)
            if doc.issued:
                raise ValidationError("status", doc.status, f"{self._number(doc)} has been issued: void it instead of "
                                      f"deleting it (numbers never have gaps)", doc.kind)
            now = datetime.now(timezone.utc)
            doc.deleted_at = now
            for line in s.query(Line).filter(Line.document_id == doc.id, Line.deleted_at.is_(None)):
                line.deleted_at = now

    # -- from deals and quotes -------------------------------------------------------------------

    def quote_from_deal(self, deal_id: str) -> str:
        deal = facade_calls.get_deal(self.ctx, deal_id)
        rate = self.default_tax_rate()
        line = LineInput(deal.title, Decimal("1"), Decimal(deal.amount_cents) / 100, rate)
        return self.create("quote", [line], title=deal.title, company_id=deal.company_id,
                           contact_id=deal.contact_id, deal_id=deal.id, currency=deal.currency or "EUR")

    def invoice_from_deal(self, deal_id: str) -> str:
        deal = facade_calls.get_deal(self.ctx, deal_id)
        quote = next((d for d in self.documents(kind="quote") if d.deal_id == deal_id and
                      d.status in ("accepted", "sent")), None)
        if quote is not None:
            return self.invoice_from_quote(quote.id)
        line = LineInput(deal.title, Decimal("1"), Decimal(deal.amount_cents) / 100, self.default_tax_rate())
        return self.create("invoice", [line], title=deal.title, company_id=deal.company_id,
                           contact_id=deal.contact_id, deal_id=deal.id, currency=deal.currency or "EUR")

    def invoice_from_quote(self, quote_id: str) -> str:
        quote = self.get(quote_id)
        if quote.kind != "quote":
            raise ValidationError("kind", quote.kind, "only a quote turns into an invoice", quote.number)
        if quote.status in ("draft", "void"):
            raise ValidationError("status", quote.status, "send the quote before turning it into an invoice", "quote")
        lines = [LineInput(l.description, l.quantity, l.unit_price, l.tax_rate, l.discount_pct, l.product_id)
                 for l in quote.lines]
        return self.create("invoice", lines, title=quote.title, company_id=quote.company_id,
                           contact_id=quote.contact_id, deal_id=quote.deal_id, source_id=quote.id,
                           currency=quote.currency, notes=quote.notes)

    # -- reading ---------------------------------------------------------------------------------

    def _view(self, doc: Document, lines: list[Line] | None = None) -> DocumentView:
        line_views = tuple(
            LineView(l.id, l.position, l.description, l.quantity, l.unit_price, l.discount_pct, l.tax_rate,
                     *_amounts(l), l.product_id) for l in (lines or []))
        return DocumentView(doc.id, doc.kind, doc.status, self._number(doc), doc.title, doc.company_id,
                            doc.contact_id, doc.deal_id, doc.source_id, doc.currency, doc.issue_date, doc.due_date,
                            doc.paid_date, doc.notes, doc.net_total, doc.tax_total, doc.gross_total, doc.seq,
                            line_views)

    def get(self, doc_id: str) -> DocumentView:
        with self.ctx.db.session() as s:
            doc = self._doc(s, doc_id)
            lines = s.query(Line).filter(Line.document_id == doc.id, Line.deleted_at.is_(None)) \
                .order_by(Line.position).all()
            return self._view(doc, lines)

    def documents(self, *, kind: str | None = None, status: str | None = None, text: str | None = None,
                  company_id: str | None = None, limit: int = 1000) -> list[DocumentView]:
        """Documents newest first; ``status="overdue"`` includes sent invoices past due."""
        with self.ctx.db.session() as s:
            query = s.query(Document).filter(Document.deleted_at.is_(None))
            if kind:
                query = query.filter(Document.kind == kind)
            if company_id:
                query = query.filter(Document.company_id == company_id)
            if text:
                query = query.filter(Document.title.ilike(f"%{text}%"))
            views = [self._view(d) for d in query.order_by(Document.created_at.desc()).limit(limit)]
        if status:
            views = [v for v in views if v.display_status == status]
        return views


def _amounts(line: Line) -> tuple[Decimal, Decimal]:
    amounts = line_amounts(line.quantity, line.unit_price, line.discount_pct, line.tax_rate)
    return amounts.net, amounts.tax
