"""Realistic, deterministic demo data, fast enough for a million contacts.

``generate(services, contacts=N, seed=S)`` writes companies, contacts (with
tags), leads, deals spread over the stages of the default pipeline, and
activities (done ones in the past; open ones overdue, due today, and upcoming).

Decisions (docs/architecture.md):

* **Deterministic**: the same seed gives the same records with the same ids
  (ids are UUIDv7-shaped, derived from the seed and a sequence, so they still
  sort by creation). Dates are relative to the day of the run, so that "today"
  and "overdue" always exist. Running the same seed twice on one database is
  refused, since the ids would collide.
* **Fast**: one write transaction (``BEGIN IMMEDIATE`` through the unit of
  work) with ``executemany`` in large batches on the DBAPI connection; the FTS
  triggers fill the search index inside the same transaction.
* **Audit**: it bypasses per-record audit entries and change listeners (demo
  data is local and never synced); it writes one audit entry for the run,
  action ``demo-data``, with the seed and the counts.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable, Iterator

from crm_desktop.domain import records
from crm_desktop.domain.validation import normalize_email, normalize_name, normalize_phone
from crm_desktop.errors import ValidationError
from crm_desktop.services.bulk_fts import DeferredIndex
from crm_desktop.storage import models
from crm_desktop.storage.changes import STAMP_COLUMNS, BulkStamp
from crm_desktop.storage.dbapi import sqlite_connection

if TYPE_CHECKING:
    from crm_desktop.services import CrmServices

#: one row of a bulk insert: the values of its columns, in order
_Row = tuple[object, ...]

log = logging.getLogger(__name__)

BATCH = 20_000
_SEARCHABLE = ("companies", "contacts", "leads", "deals", "activities")
MAX_CONTACTS = 5_000_000
#: base of the ids' time part (2024-01-01T00:00Z); each seed gets its own range
_ID_EPOCH_MS = 1_704_067_200_000

FIRST_NAMES = (
    "Anna Ben Clara David Emma Felix Greta Hannah Ivan Julia Karl Lena Marco Nina Oskar Paula Quentin Rosa "
    "Stefan Tanja Uwe Vera Walter Xenia Yusuf Zoe Ahmed Beatriz Chen Dmitri Elif Fatima Giulia Hiro Ines "
    "Jonas Kemal Lucia Mateo Noah Olga Pierre Rania Sofia Tomasz Ulla Valentina William Yara Zeynep Amelie "
    "Bruno Carla Daniel Eva Finn Gabriel Helena Ida Jakob Klara Leon Mia Nils Olivia Paul Rafael Sara Theo "
    "Lea Maximilian Sophie Lukas Marie Elias Laura Jan Lisa Tim Katharina Moritz Johanna Florian Anja "
    "Michael Sabine Thomas Andrea Peter Monika Frank Petra Jürgen Birgit Andreas Claudia Markus Susanne "
    "José María Ángel Lucía François Chloé Søren Åsa Łukasz Zoë Björn Renée Noémie Joël Ülkü Çağla"
).split()
LAST_NAMES = (
    "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer Koch Bauer Richter "
    "Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger Hofmann Hartmann Lange Schmitt Werner "
    "Krause Meier Lehmann Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Dubois Moreau Laurent Lefèvre Rossi "
    "Russo Ferrari Esposito Bianchi Romano Colombo Ricci Nowak Kowalski Wiśniewski Novák Svoboda Horvat "
    "Jansen de Vries van Dijk Bakker Janssen Visser Nielsen Jensen Hansen Andersson Johansson Karlsson "
    "Nilsson Virtanen Korhonen Yılmaz Kaya Demir Şahin Çelik Popescu Ionescu Papadopoulos Silva Santos "
    "Ferreira Pereira Oliveira Costa Tanaka Suzuki Sato Kim Park Wang Li Zhang Liu Chen Singh Kumar Patel"
).split()
_COMPANY_WORDS = (
    "Alpen Nord Süd Ost West Rhein Elbe Isar Blue Green Silver Golden Bright Prime Apex Summit Vertex "
    "Nova Stella Orion Atlas Titan Falcon Eagle Lynx Cedar Oak Maple Birch River Lake Harbor Bridge Stone "
    "Iron Copper Crystal Delta Sigma Omega Quantum Pixel Vector Fusion Metro Urban Terra Aqua Solar Lumen"
).split()
_COMPANY_KINDS = (
    "Logistik Technik Systems Solutions Software Consulting Maschinenbau Foods Pharma Energy Bau Medien "
    "Textil Automotive Analytics Robotics Design Trading Finance Labs Werke Dynamics Networks Partners"
).split()
_COMPANY_FORMS = ("GmbH", "AG", "KG", "GmbH & Co. KG", "Ltd", "Inc.", "S.A.", "B.V.", "SE", "Oy", "AB", "S.r.l.")
INDUSTRIES = ("Manufacturing", "Retail", "Software", "Logistics", "Healthcare", "Energy", "Finance",
              "Construction", "Media", "Food", "Automotive", "Consulting")
CITIES = (("Berlin", "10115", "Germany", "+49 30"), ("Hamburg", "20095", "Germany", "+49 40"),
          ("München", "80331", "Germany", "+49 89"), ("Köln", "50667", "Germany", "+49 221"),
          ("Frankfurt am Main", "60311", "Germany", "+49 69"), ("Wien", "1010", "Austria", "+43 1"),
          ("Zürich", "8001", "Switzerland", "+41 44"), ("Paris", "75001", "France", "+33 1"),
          ("Lyon", "69001", "France", "+33 4"), ("Milano", "20121", "Italy", "+39 02"),
          ("Madrid", "28001", "Spain", "+34 91"), ("Amsterdam", "1011", "Netherlands", "+31 20"),
          ("København", "1050", "Denmark", "+45 33"), ("Stockholm", "111 20", "Sweden", "+46 8"),
          ("Warszawa", "00-001", "Poland", "+48 22"), ("London", "EC1A 1BB", "United Kingdom", "+44 20"),
          ("Dublin", "D01", "Ireland", "+353 1"), ("New York", "10001", "United States", "+1 212"))
STREETS = ("Hauptstraße", "Bahnhofstraße", "Gartenweg", "Lindenallee", "Schillerstraße", "Market Street",
           "Rue de la Paix", "Via Roma", "Calle Mayor", "Kerkstraat", "Storgatan", "Industriestraße")
JOB_TITLES = ("CEO", "CTO", "CFO", "Head of Purchasing", "Purchasing Manager", "Sales Director",
              "Key Account Manager", "Operations Manager", "Project Manager", "Office Manager",
              "IT Manager", "Procurement Specialist", "Managing Director", "Head of Logistics", "Buyer")
TAGS = ("vip", "newsletter", "partner", "trade fair 2026", "decision maker")
LEAD_SOURCES = ("Website", "Trade fair", "Referral", "Cold call", "LinkedIn", "Webinar", "Partner")
LEAD_STATUSES = ("new", "new", "contacted", "contacted", "qualified", "disqualified")
DEAL_PRODUCTS = ("Service contract", "Hardware upgrade", "Annual licence", "Pilot project", "Maintenance",
                 "Consulting package", "Rollout phase 2", "Spare parts", "Training", "Framework agreement")
ACTIVITY_SUBJECTS = {
    "call": ("Follow-up call", "Discuss the offer", "Clarify delivery dates", "Check budget", "Intro call"),
    "meeting": ("Quarterly review", "Product demo", "Contract negotiation", "Kick-off meeting"),
    "visit": ("On-site visit", "Plant tour", "Visit at trade fair booth", "Installation check"),
    "task": ("Send proposal", "Prepare quote", "Update price list", "Send brochure", "Book travel"),
    "note": ("Notes from call", "Competitor mentioned", "Budget approved", "Decision next quarter"),
}


@dataclass(frozen=True)
class DemoDataResult:
    """What a run wrote, and how long it took."""

    seed: int
    companies: int
    contacts: int
    leads: int
    deals: int
    activities: int
    seconds: float

    def describe(self) -> str:
        return (f"demo data (seed {self.seed}): {self.companies} companies, {self.contacts} contacts, "
                f"{self.leads} leads, {self.deals} deals, {self.activities} activities "
                f"in {self.seconds:.1f} s")


def plan(contacts: int) -> dict[str, int]:
    """How many of each entity a run with ``contacts`` contacts makes."""
    return {"companies": max(1, contacts // 20), "contacts": contacts, "leads": max(1, contacts // 20),
            "deals": max(1, contacts // 10), "activities": max(4, contacts // 4)}


def _db_time(value: datetime) -> str:
    # the text form SQLAlchemy's DateTime writes on SQLite (naive UTC), so ORM reads stay identical
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


class _Ids:
    """UUIDv7-shaped ids from the seed: time part from a per-seed base, 12-bit sequence, seeded random."""

    def __init__(self, seed: int, rng: random.Random):
        self.base_ms = _ID_EPOCH_MS + (seed % 1_000_000) * 86_400_000
        self.rng = rng
        self.n = 0

    def next(self) -> str:
        n = self.n
        self.n += 1
        value = ((self.base_ms + (n >> 12)) << 80) | (0x7 << 76) | ((n & 0xFFF) << 64) | (0b10 << 62) \
            | self.rng.getrandbits(62)
        h = f"{value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def generate(services: CrmServices, *, contacts: int, seed: int = 1,
             progress: Callable[[str, int, int], None] | None = None) -> DemoDataResult:
    """Write demo data for ``contacts`` contacts in one transaction; see the module doc."""
    if not 1 <= contacts <= MAX_CONTACTS:
        raise ValidationError("contacts", contacts, f"must be between 1 and {MAX_CONTACTS}")
    started = time.perf_counter()
    counts = plan(contacts)
    pipeline = services.pipelines.default()
    stages = services.pipelines.stages(pipeline.id)
    with services.unit_of_work() as uow:
        conn = sqlite_connection(uow.session.connection())
        writer = _Writer(conn, seed, counts, pipeline.id, stages, progress, BulkStamp(uow.actor))
        writer.refuse_repeat()
        # a big cache keeps the indexes' pages in memory during the bulk insert (this connection only)
        conn.execute("PRAGMA cache_size=-400000")
        try:
            writer.write_all()
        finally:
            conn.execute("PRAGMA cache_size=-32000")
        uow.session.add(models.AuditEntry(
            actor_kind=uow.actor.kind.value, actor_name=uow.actor.name, action="demo-data",
            changes={"seed": seed, **counts}))
    result = DemoDataResult(seed=seed, seconds=time.perf_counter() - started, **counts)
    log.info("%s", result.describe())
    return result


class _Writer:
    def __init__(self, conn: sqlite3.Connection, seed: int, counts: dict[str, int], pipeline_id: str,
                 stages: list[records.Stage], progress: Callable[[str, int, int], None] | None,
                 stamps: BulkStamp):
        self.conn = conn
        self.stamps = stamps  # the sync columns, stamped by storage's rules
        self.seed = seed
        self.counts = counts
        self.rng = random.Random(seed)
        self.ids = _Ids(seed, random.Random(seed ^ 0x5EED))
        self.pipeline_id = pipeline_id
        self.stages = stages
        self.progress = progress
        self.now = datetime.now(timezone.utc).replace(microsecond=0)
        self.today = self.now.replace(hour=0, minute=0, second=0)
        self.company_ids: list[str] = []
        self.company_domains: list[str] = []
        self.contact_ids: list[str] = []
        self.contact_company: list[int] = []

    def refuse_repeat(self) -> None:
        first = _Ids(self.seed, random.Random(self.seed ^ 0x5EED)).next()
        if self.conn.execute("SELECT 1 FROM companies WHERE id = ?", (first,)).fetchone():
            raise ValidationError("seed", self.seed, "demo data of this seed is in the database already; "
                                                     "use another --seed")

    def _insert(self, table: str, columns: tuple[str, ...], rows: Iterator[_Row], total: int) -> None:
        index = DeferredIndex(self.conn, table) if table in _SEARCHABLE else None
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        batch: list[_Row] = []
        done = 0
        for row in rows:
            batch.append(row)
            if len(batch) >= BATCH:
                self.conn.executemany(sql, batch)
                done += len(batch)
                batch = []
                if self.progress:
                    self.progress(table, done, total)
        if batch:
            self.conn.executemany(sql, batch)
            done += len(batch)
        if index is not None:
            index.close()  # one set-based fill of the search index: 5x faster than per-row triggers
        if self.progress:
            self.progress(table, done, total)

    def _stamp(self, days_back: int) -> str:
        return _db_time(self.now - timedelta(days=self.rng.randrange(days_back), seconds=self.rng.randrange(86400)))

    def write_all(self) -> None:
        self._companies()
        self._contacts()
        self._tags()
        self._leads()
        deal_ids = self._deals()
        self._activities(deal_ids)

    # -- entities ---------------------------------------------------------------------

    def _companies(self) -> None:
        rng = self.rng
        cols = ("id", "name", "name_key", "website", "industry", "email", "phone", "street", "city",
                "postal_code", "country", "notes", *STAMP_COLUMNS)

        def rows() -> Iterator[_Row]:
            for i in range(self.counts["companies"]):
                ident = self.ids.next()
                word, kind = rng.choice(_COMPANY_WORDS), rng.choice(_COMPANY_KINDS)
                name = f"{word} {kind} {rng.choice(_COMPANY_FORMS)}" if i < 2000 else \
                    f"{word} {kind} {i} {rng.choice(_COMPANY_FORMS)}"  # unique names beyond the common ones
                domain = f"{word}-{kind}{'' if i < 2000 else i}".lower().replace("ü", "ue") + ".example"
                city, code, country, prefix = rng.choice(CITIES)
                self.company_ids.append(ident)
                self.company_domains.append(domain)
                stamp = self._stamp(900)
                yield (ident, name, normalize_name(name), f"https://www.{domain}", rng.choice(INDUSTRIES),
                       f"info@{domain}", f"{prefix} {rng.randrange(100000, 9999999)}",
                       f"{rng.choice(STREETS)} {rng.randrange(1, 200)}", city, code, country, None,
                       *self.stamps.values(stamp))

        self._insert("companies", cols, rows(), self.counts["companies"])

    def _contacts(self) -> None:
        rng = self.rng
        cols = ("id", "first_name", "last_name", "name_key", "email", "email_key", "phone", "phone_key",
                "mobile", "mobile_key", "job_title", "company_id", "street", "city", "postal_code", "country",
                "notes", *STAMP_COLUMNS)
        name_keys: dict[tuple[str, str], str | None] = {}
        ascii_names: dict[str, str] = {}
        n_companies = len(self.company_ids)

        def ascii_of(name: str) -> str:
            value = ascii_names.get(name)
            if value is None:
                value = (normalize_name(name) or "x").replace(" ", "")
                ascii_names[name] = value
            return value

        def rows() -> Iterator[_Row]:
            for i in range(self.counts["contacts"]):
                ident = self.ids.next()
                first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
                key = name_keys.get((first, last))
                if key is None:
                    key = name_keys[(first, last)] = normalize_name(last, first)
                company = rng.randrange(n_companies) if rng.random() < 0.9 else -1
                domain = self.company_domains[company] if company >= 0 else "mail.example"
                email = f"{ascii_of(first)}.{ascii_of(last)}.{i}@{domain}"  # unique: no demo duplicates
                city, code, country, prefix = rng.choice(CITIES)
                phone = f"{prefix} {1000000 + i:07d}"
                mobile = f"+49 17{rng.randrange(10)} {rng.randrange(1000000, 9999999)}" if rng.random() < 0.6 else None
                notes = "Met at the trade fair; interested in a pilot." if rng.random() < 0.05 else None
                stamp = self._stamp(700)
                self.contact_ids.append(ident)
                self.contact_company.append(company)
                yield (ident, first, last, key, email, normalize_email(email), phone, normalize_phone(phone), mobile,
                       normalize_phone(mobile), rng.choice(JOB_TITLES),
                       self.company_ids[company] if company >= 0 else None,
                       f"{rng.choice(STREETS)} {rng.randrange(1, 200)}", city, code, country, notes,
                       *self.stamps.values(stamp))

        self._insert("contacts", cols, rows(), self.counts["contacts"])

    def _tags(self) -> None:
        stamp = _db_time(self.now)
        tag_ids = []
        for name in TAGS:
            row = self.conn.execute("SELECT id FROM tags WHERE name_key = ?", (normalize_name(name),)).fetchone()
            if row is None:
                ident = self.ids.next()
                self.conn.execute(f"INSERT INTO tags (id, name, name_key, {', '.join(STAMP_COLUMNS)}) "
                                  f"VALUES (?, ?, ?, {', '.join('?' * len(STAMP_COLUMNS))})",
                                  (ident, name, normalize_name(name), *self.stamps.values(stamp)))
                tag_ids.append(ident)
            else:
                tag_ids.append(row[0])
        rng = self.rng
        links = ((cid, tag_ids[rng.randrange(len(tag_ids))]) for cid in self.contact_ids if rng.random() < 0.1)
        self._insert("contact_tags", ("contact_id", "tag_id"), links, len(self.contact_ids) // 10)

    def _leads(self) -> None:
        rng = self.rng
        cols = ("id", "title", "first_name", "last_name", "company_name", "email", "phone", "status", "source",
                *STAMP_COLUMNS)

        def rows() -> Iterator[_Row]:
            for i in range(self.counts["leads"]):
                first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
                company = f"{rng.choice(_COMPANY_WORDS)} {rng.choice(_COMPANY_KINDS)} {rng.choice(_COMPANY_FORMS)}"
                stamp = self._stamp(120)
                yield (self.ids.next(), f"{rng.choice(DEAL_PRODUCTS)} for {company}", first, last, company,
                       f"lead{i}@{company.split()[0].lower()}.example",
                       f"+49 {rng.randrange(30, 999)} {rng.randrange(100000, 9999999)}",
                       rng.choice(LEAD_STATUSES), rng.choice(LEAD_SOURCES), *self.stamps.values(stamp))

        self._insert("leads", cols, rows(), self.counts["leads"])

    def _deals(self) -> list[str]:
        rng = self.rng
        cols = ("id", "title", "pipeline_id", "stage_id", "amount_cents", "currency", "status", "company_id",
                "contact_id", "expected_close", "stage_changed_at", *STAMP_COLUMNS)
        deal_ids: list[str] = []
        n_contacts = len(self.contact_ids)

        def rows() -> Iterator[_Row]:
            for _ in range(self.counts["deals"]):
                ident = self.ids.next()
                deal_ids.append(ident)
                contact = rng.randrange(n_contacts)
                company = self.contact_company[contact]
                stage = rng.choice(self.stages)
                status = "won" if stage.is_won else "lost" if stage.is_lost else "open"
                close = (self.today + timedelta(days=rng.randrange(-60, 180))).date().isoformat()
                stamp = self._stamp(365)
                yield (ident, f"{rng.choice(DEAL_PRODUCTS)} {rng.randrange(2024, 2028)}", self.pipeline_id,
                       stage.id, rng.randrange(5, 2000) * 500_00 // 10, "EUR", status,
                       self.company_ids[company] if company >= 0 else None, self.contact_ids[contact], close,
                       stamp, *self.stamps.values(stamp))

        self._insert("deals", cols, rows(), self.counts["deals"])
        return deal_ids

    def _activities(self, deal_ids: list[str]) -> None:
        rng = self.rng
        cols = ("id", "kind", "subject", "body", "due_at", "done_at", "location", "contact_id", "company_id",
                "deal_id", *STAMP_COLUMNS)
        kinds = tuple(ACTIVITY_SUBJECTS)
        n_contacts = len(self.contact_ids)
        total = self.counts["activities"]

        def rows() -> Iterator[_Row]:
            for i in range(total):
                kind = kinds[i % len(kinds)] if i < 20 else rng.choice(kinds)
                contact = rng.randrange(n_contacts)
                company = self.contact_company[contact]
                # a quarter each: done in the past, overdue, due today, upcoming (the first four cover all)
                when = i % 4 if i < 4 else rng.randrange(4)
                hour = timedelta(hours=rng.randrange(8, 18), minutes=rng.choice((0, 15, 30, 45)))
                due: datetime | None
                done: datetime | None
                if when == 0:
                    due = self.today - timedelta(days=rng.randrange(1, 365)) + hour
                    done = due + timedelta(minutes=rng.randrange(15, 240))
                elif when == 1:
                    due, done = self.today - timedelta(days=rng.randrange(1, 30)) + hour, None
                elif when == 2:
                    due, done = self.today + hour, None
                else:
                    due, done = self.today + timedelta(days=rng.randrange(1, 60)) + hour, None
                if kind == "note":
                    due, done = None, self.now - timedelta(days=rng.randrange(0, 365))
                deal = deal_ids[rng.randrange(len(deal_ids))] if rng.random() < 0.3 else None
                stamp = self._stamp(365)
                yield (self.ids.next(), kind, rng.choice(ACTIVITY_SUBJECTS[kind]),
                       "Agreed next steps; send summary." if rng.random() < 0.2 else None,
                       _db_time(due) if due else None, _db_time(done) if done else None,
                       "On site" if kind == "visit" else None, self.contact_ids[contact],
                       self.company_ids[company] if company >= 0 else None, deal, *self.stamps.values(stamp))

        self._insert("activities", cols, rows(), total)
