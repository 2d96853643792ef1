"""Render the README screenshots: a demo database in a temporary home, one PNG per view.

``make screenshots`` runs this. It uses ``crm_desktop.services.demo_data`` when that exists,
else the small generator below, then calls the app's own screenshot path
(``crm-desktop --screenshot``) for each view, so the pictures show exactly what the app draws.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VIEWS = ("today", "contacts", "companies", "leads", "deals", "activities", "plugins")
log = logging.getLogger("make_screenshots")

FIRST = ["Anna", "Ben", "Clara", "David", "Elena", "Felix", "Greta", "Hugo", "Ines", "Jonas", "Karin", "Lukas",
         "Maria", "Nils", "Olga", "Paul", "Rita", "Simon", "Tanja", "Uwe", "Vera", "Walter", "Yara", "Zoe"]
LAST = ["Schmidt", "Müller", "Weber", "Fischer", "Becker", "Hoffmann", "Schäfer", "Koch", "Richter", "Klein",
        "Wolf", "Neumann", "Schwarz", "Braun", "Zimmermann", "Hartmann", "Lange", "Krüger", "Werner", "Vogel"]
COMPANIES = [("Nordlicht Logistik", "Logistics", "Hamburg"), ("Alpenblick Hotels", "Hospitality", "Munich"),
             ("Rheintal Maschinenbau", "Manufacturing", "Cologne"), ("Spreewerk Software", "Software", "Berlin"),
             ("Elbe Medical", "Healthcare", "Dresden"), ("Mainfeld Bau", "Construction", "Frankfurt"),
             ("Bodensee Foods", "Food", "Konstanz"), ("Hansa Energie", "Energy", "Bremen"),
             ("Schwarzwald Optik", "Retail", "Freiburg"), ("Neckar Robotics", "Robotics", "Stuttgart"),
             ("Ostsee Marine", "Marine", "Kiel"), ("Harz Pharma", "Pharma", "Goslar")]
TITLES = ["Head of Purchasing", "CEO", "Operations Manager", "IT Lead", "Buyer", "Plant Manager", "CFO",
          "Office Manager", "Sales Director", "Procurement Specialist"]
DEALS = ["Fleet renewal", "Annual service contract", "Warehouse scanners", "Pilot project", "Software licences",
         "Spare parts framework", "Training package", "Expansion phase 2", "Maintenance upgrade", "Cloud migration"]


def generate(services, contacts: int = 160, seed: int = 7) -> None:
    """A small, believable data set: companies, contacts, leads, deals in every stage, an agenda."""
    rnd = random.Random(seed)
    now = datetime.now(timezone.utc)
    companies = []
    for name, industry, city in COMPANIES:
        slug = name.split()[0].lower()
        companies.append(services.companies.create(
            name=name, industry=industry, city=city, country="Germany", website=f"{slug}.example.com",
            phone=f"+49 30 {rnd.randint(1000000, 9999999)}", tags=rnd.sample(["key account", "prospect", "partner"], 1)))
    people = []
    for i in range(contacts):
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        company = rnd.choice(companies)
        domain = company.website
        people.append(services.contacts.create(
            first_name=first, last_name=last, company_id=company.id, job_title=rnd.choice(TITLES),
            email=f"{first.lower()}.{last.lower().replace('ü', 'ue').replace('ä', 'ae')}{i}@{domain}",
            phone=f"+49 {rnd.randint(150, 179)} {rnd.randint(1000000, 9999999)}", city=company.city,
            country="Germany", tags=rnd.sample(["decision maker", "newsletter", "vip", "technical"], rnd.randint(0, 2))))
    for i in range(24):
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        services.leads.create(title=f"{rnd.choice(DEALS)} enquiry", first_name=first, last_name=last,
                              company_name=f"{last} {rnd.choice(['GmbH', 'AG', 'KG'])}",
                              email=f"{first.lower()}@lead{i}.example.com",
                              status=rnd.choice(["new", "new", "contacted", "qualified", "disqualified"]),
                              source=rnd.choice(["Trade fair", "Website", "Referral", "Cold call"]))
    pipeline = services.pipelines.default()
    stages = services.pipelines.stages(pipeline.id)
    deals = []
    for i in range(40):
        person = rnd.choice(people)
        stage = rnd.choice(stages[:-1] if rnd.random() < 0.85 else stages)
        deals.append(services.deals.create(
            title=f"{rnd.choice(DEALS)} – {person.company_name.split()[0]}", stage_id=stage.id,
            pipeline_id=pipeline.id, amount=rnd.choice([4500, 12000, 18500, 25000, 48000, 75000, 120000]),
            company_id=person.company_id, contact_id=person.id,
            expected_close=(now + timedelta(days=rnd.randint(5, 120))).date()))
    for offset, kind, subject in ((-3, "task", "Send revised quote"), (-1, "call", "Call back about delivery dates"),
                                  (-2, "task", "Prepare contract draft"), (0, "visit", "On-site visit: demo of scanners"),
                                  (0, "call", "Follow-up call after trade fair"), (0, "task", "Update price list"),
                                  (1, "meeting", "Quarterly review"), (2, "visit", "Plant tour and requirements"),
                                  (3, "meeting", "Negotiation round 2"), (5, "call", "Check pilot results")):
        person = rnd.choice(people)
        due = (now + timedelta(days=offset)).astimezone().replace(hour=rnd.choice([9, 10, 14, 16]), minute=0)
        services.activities.schedule(kind, subject, due, contact_id=person.id, company_id=person.company_id)
    for _ in range(30):
        person = rnd.choice(people)
        services.activities.log(rnd.choice(["call", "note", "visit"]), rnd.choice(
            ["Discussed budget for next year", "Introduced new product line", "Left voicemail",
             "Agreed on next steps", "Sent brochure"]), contact_id=person.id, company_id=person.company_id)
    return deals


def backdate(db_path: Path, deal_ids: list[str], days: int = 45) -> None:
    """Make a few deals look quiet for the Today view (the services always stamp 'now')."""
    old = (datetime.now(timezone.utc) - timedelta(days=days)).isoformat()
    with sqlite3.connect(db_path) as conn:
        conn.executemany("UPDATE deals SET updated_at = ? WHERE id = ?", [(old, d) for d in deal_ids])


def build_demo_home(root: Path) -> Path:
    from crm_desktop.core import Core
    from crm_desktop.paths import Home

    home = Home(root).ensure()
    with Core.open(home) as core:
        try:
            demo = importlib.import_module("crm_desktop.services.demo_data")
        except ModuleNotFoundError:
            demo = None
        fn = next((getattr(demo, n) for n in ("generate", "create_demo_data") if demo and hasattr(demo, n)), None)
        if fn is not None:
            fn(core.services, contacts=300)
        else:
            deals = generate(core.services)
            quiet = [d.id for d in deals[:5]]
    if fn is None:
        backdate(home.db_path, quiet)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(REPO / "docs" / "images"))
    parser.add_argument("--size", default="1440x900")
    parser.add_argument("--views", default=",".join(VIEWS))
    parser.add_argument("--home", help="use this home instead of a fresh demo one")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="crm-shots-") as tmp:
        home = Path(args.home) if args.home else build_demo_home(Path(tmp) / "home")
        for view in args.views.split(","):
            target = out / f"{view}.png"
            cmd = [sys.executable, "-m", "crm_desktop", "--home", str(home), "--screenshot", str(target),
                   "--view", view, "--size", args.size]
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode != 0:
                print(result.stdout, result.stderr, file=sys.stderr)
                return result.returncode
            print(f"{view:<11} -> {target.relative_to(REPO) if target.is_relative_to(REPO) else target}")
        dark = out / "contacts-dark.png"  # one picture of the dark scheme
        subprocess.run([sys.executable, "-m", "crm_desktop", "--home", str(home), "--screenshot", str(dark),
                        "--view", "contacts", "--size", args.size], check=True, capture_output=True,
                       env=dict(os.environ, CRM_DESKTOP_THEME="dark"))
        print(f"{'dark':<11} -> {dark.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
