"""docs/images/reporting-dashboard.png: the reporting dashboard on demo data, rendered offscreen.

Demo data (``crm-desktop demo-data``) has one owner and closes every deal the day it was made,
so before the picture this script hands the deals, activities and leads to five reps in two teams
and dates each won or lost deal's creation 10 to 90 days before its close (a believable sales
cycle). Everything happens in a temporary home.

    QT_QPA_PLATFORM=offscreen python scripts/screenshot_reporting.py [OUT.png]   (make screenshots)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REPS = (("maria", "Maria Keller", "north"), ("jonas", "Jonas Weber", "north"), ("lea", "Lea Fischer", "north"),
        ("tom", "Tom Becker", "south"), ("sara", "Sara Wolf", "south"))


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else REPO / "docs" / "images" / "reporting-dashboard.png"
    sys.path.insert(0, str(REPO))
    import keyring
    from PySide6.QtWidgets import QApplication

    from crm_desktop.auth.memory_keyring import MemoryKeyring
    from crm_desktop.core import Core
    from crm_desktop.paths import Home
    from crm_desktop.plugin_host.host import PluginHost
    from crm_desktop.services.demo_data import generate

    keyring.set_keyring(MemoryKeyring())
    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory(prefix="reporting-shot-") as tmp:
        home = Home(Path(tmp) / "home").ensure()
        core = Core.open(home)
        services = core.services
        generate(services, contacts=4000, seed=7)
        ids = [services.users.create(username=u, display_name=n, team_id=t).id for u, n, t in REPS]
        with services.db.write_engine.begin() as conn:
            for table in ("deals", "activities", "leads"):
                cases = " ".join(f"WHEN {i} THEN '{uid}'" for i, uid in enumerate(ids))
                teams = " ".join(f"WHEN {i} THEN '{t}'" for i, (_, _, t) in enumerate(REPS))
                # uneven shares, so the reps differ: rowid*7 % 11 folded onto five reps
                pick = "((rowid * 7) % 11) % 5"
                conn.exec_driver_sql(f"UPDATE {table} SET owner_id = CASE {pick} {cases} END, "
                                     f"team_id = CASE {pick} {teams} END")
            conn.exec_driver_sql(
                "UPDATE deals SET created_at = strftime('%Y-%m-%d %H:%M:%f', stage_changed_at, "
                "'-' || (10 + abs(random()) % 80) || ' days') WHERE status != 'open'")
        host = PluginHost(core, home, role="admin", bundled_dir=None, system_dir=None,
                          extra_folders=(REPO / "plugins" / "reporting",))
        host.start()
        try:
            panel_spec = host.panels("reporting")[0]
            panel = panel_spec.factory(None)
            panel.resize(1400, 1060)
            panel.show()
            for _ in range(600):  # up to a minute for the background load
                app.processEvents()
                if panel.dashboard is not None or panel.error is not None:
                    break
                import time

                time.sleep(0.1)
            if panel.dashboard is None:
                print(f"the dashboard did not load: {panel.error}", file=sys.stderr)
                return 1
            app.processEvents()
            panel.status.setText("Updated · 6 charts")  # no clock time in a committed picture
            panel.setFocus()  # no selected text in the date field
            app.processEvents()
            out.parent.mkdir(parents=True, exist_ok=True)
            if not panel.grab().save(str(out)):
                print(f"could not write {out}", file=sys.stderr)
                return 1
            panel.dispose()
            panel.deleteLater()
            app.processEvents()
        finally:
            host.stop()
            core.close()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
