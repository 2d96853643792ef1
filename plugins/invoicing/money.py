"""Exact money arithmetic (``Decimal``), with the rounding rules the documents print.

Rules (docs/invoicing.md, "Money"):

- a line's net = quantity × unit price × (1 − discount % / 100), rounded to cents, half up;
- a line's tax = that net × tax rate / 100, rounded to cents, half up;
- the document's net and tax totals are the sums of the rounded line values, gross = net + tax.

So every printed total is the exact sum of the printed lines: no cent appears or vanishes.
Tax is computed per line (not on the sum per rate); the difference, at most half a cent per
line, is the price of totals that always add up.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Iterable

CENT = Decimal("0.01")
HUNDRED = Decimal(100)


def cents(value: Decimal) -> Decimal:
    """``value`` rounded to cents, half up."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def parse_amount(text: str | Decimal | int, field: str = "amount") -> Decimal:
    """A user-typed amount (``"1.234,50"`` is refused, ``"1234.50"`` and ``"1234,50"`` are fine)."""
    if isinstance(text, (Decimal, int)):
        return Decimal(text)
    cleaned = str(text).strip().replace(" ", "")
    if cleaned.count(",") == 1 and "." not in cleaned:
        cleaned = cleaned.replace(",", ".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"{field}: {text!r} is not a number (use e.g. 1234.50)") from None
    if not value.is_finite():
        raise ValueError(f"{field}: {text!r} is not a number (use e.g. 1234.50)")
    return value


@dataclass(frozen=True)
class LineAmounts:
    net: Decimal
    tax: Decimal

    @property
    def gross(self) -> Decimal:
        return self.net + self.tax


def line_amounts(quantity: Decimal, unit_price: Decimal, discount_pct: Decimal, tax_rate: Decimal) -> LineAmounts:
    net = cents(quantity * unit_price * (HUNDRED - discount_pct) / HUNDRED)
    return LineAmounts(net, cents(net * tax_rate / HUNDRED))


@dataclass(frozen=True)
class Totals:
    net: Decimal
    tax: Decimal
    gross: Decimal
    #: tax per rate, for the tax summary printed under the lines
    tax_by_rate: tuple[tuple[Decimal, Decimal], ...] = ()


def totals(lines: Iterable[LineAmounts | tuple[LineAmounts, Decimal]]) -> Totals:
    net = tax = Decimal("0.00")
    by_rate: dict[Decimal, Decimal] = {}
    for item in lines:
        amounts, rate = item if isinstance(item, tuple) else (item, None)
        net += amounts.net
        tax += amounts.tax
        if rate is not None:
            by_rate[rate] = by_rate.get(rate, Decimal("0.00")) + amounts.tax
    return Totals(net, tax, net + tax, tuple(sorted(by_rate.items())))


def format_money(value: Decimal, currency: str = "EUR") -> str:
    """``1234.5`` -> ``"1,234.50 EUR"``."""
    return f"{cents(value):,.2f} {currency}"
