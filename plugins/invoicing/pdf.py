"""PDF export of a quote or an invoice: Qt's ``QTextDocument`` printed by ``QPdfWriter``.

The PDF is made in memory (:func:`pdf_bytes`); the host writes it to the file the user picks
(``ctx.ui.save_file``). The text is real text in the PDF (searchable, and read back by the
tests with pypdf).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMarginsF, QUrl
from PySide6.QtGui import QImage, QPageLayout, QPageSize, QPdfWriter, QTextDocument

from .money import format_money
from .service import DocumentView

LOGO_URL = "invoicing-logo"


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def document_html(doc: DocumentView, *, company_name: str, address: str, customer: list[str],
                  has_logo: bool, payment_days: int) -> str:
    title = "Invoice" if doc.kind == "invoice" else "Quote"
    sender = "<br>".join(_esc(part.strip()) for part in [company_name, *address.split(" / ")] if part.strip())
    rows = "".join(
        f"<tr><td>{line.position}</td><td>{_esc(line.description)}</td>"
        f"<td align='right'>{line.quantity.normalize():f}</td>"
        f"<td align='right'>{format_money(line.unit_price, doc.currency)}</td>"
        f"<td align='right'>{line.discount_pct.normalize():f} %</td>"
        f"<td align='right'>{line.tax_rate.normalize():f} %</td>"
        f"<td align='right'>{format_money(line.net, doc.currency)}</td></tr>"
        for line in doc.lines)
    logo = f"<img src='{LOGO_URL}' height='60'>" if has_logo else ""
    dates = []
    if doc.issue_date:
        dates.append(f"Date: {doc.issue_date.isoformat()}")
    if doc.kind == "invoice" and doc.due_date:
        dates.append(f"Due: {doc.due_date.isoformat()} ({payment_days} days)")
    return f"""
<html><body style="font-family: sans-serif; font-size: 10pt">
<table width="100%"><tr>
  <td>{logo}<br><b>{_esc(company_name)}</b></td>
  <td align="right">{sender}</td>
</tr></table>
<p>{'<br>'.join(_esc(c) for c in customer)}</p>
<h2>{title} {_esc(doc.number)}</h2>
<p>{_esc(doc.title)}<br>{'<br>'.join(dates)}</p>
<table width="100%" cellspacing="0" cellpadding="4" border="1" style="border-collapse: collapse">
<tr><th>#</th><th align="left">Description</th><th>Qty</th><th>Unit price</th><th>Discount</th><th>Tax</th>
<th>Net</th></tr>
{rows}
</table>
<table width="100%" cellpadding="3"><tr><td></td><td align="right">
Net total: {format_money(doc.net_total, doc.currency)}<br>
Tax: {format_money(doc.tax_total, doc.currency)}<br>
<b>Total: {format_money(doc.gross_total, doc.currency)}</b></td></tr></table>
<p>{_esc(doc.notes)}</p>
</body></html>"""


def pdf_bytes(doc: DocumentView, *, company_name: str = "", address: str = "", customer: list[str] | None = None,
              logo_file: str | None = None, payment_days: int = 14) -> bytes:
    """``doc`` as an A4 PDF file's bytes. A logo file that cannot be read is left out."""
    text = QTextDocument()
    image = QImage(logo_file) if logo_file and Path(logo_file).is_file() else QImage()
    if not image.isNull():
        text.addResource(QTextDocument.ResourceType.ImageResource, QUrl(LOGO_URL), image)
    text.setHtml(document_html(doc, company_name=company_name, address=address, customer=customer or [],
                               has_logo=not image.isNull(), payment_days=payment_days))
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QPdfWriter(buffer)
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4), QPageLayout.Orientation.Portrait,
                                     QMarginsF(15, 15, 15, 15), QPageLayout.Unit.Millimeter))
    writer.setTitle(f"{doc.kind} {doc.number}")
    writer.setCreator("crm-desktop invoicing")
    text.print_(writer)
    del writer  # finishes the file
    buffer.close()
    return bytes(data.data())
