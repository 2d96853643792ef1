"""The main window shell (menus, pages, routes, status, persistence) and the app's CLI paths."""

from __future__ import annotations

import json

from PySide6.QtCore import QSettings
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QLabel

from crm_desktop.cli import main
from crm_desktop.ui.shell import MainWindow


def test_sidebar_and_menus(main_window):
    titles = [main_window.sidebar.item(i).text() for i in range(main_window.sidebar.count())]
    assert titles[:6] == ["Today", "Contacts", "Companies", "Leads", "Deals", "Activities"]
    menus = [a.text() for a in main_window.menuBar().actions()]
    assert menus == ["File", "Edit", "View", "Tools", "Plugins", "Help"]
    main_window.menu("Reports")
    assert [a.text() for a in main_window.menuBar().actions()][-2:] == ["Reports", "Help"]


def test_pages_added_and_removed_by_key(qtbot, main_window):
    label = QLabel("hello")
    main_window.add_page("sample", label, "Sample")
    titles = [main_window.sidebar.item(i).text() for i in range(main_window.sidebar.count())]
    assert titles[-2:] == ["PLUGINS", "Sample"]
    main_window.show_page("sample")
    assert main_window.stack.currentWidget() is label and main_window.page_title.text() == "Sample"
    main_window.remove_page("sample")
    titles = [main_window.sidebar.item(i).text() for i in range(main_window.sidebar.count())]
    assert "Sample" not in titles and "PLUGINS" not in titles
    assert main_window.current_page() == "today"


def test_paths_route_to_openers_or_say_nothing_is_there(main_window):
    opened = []
    dispose = main_window.register_path("/plugins/sample", lambda: opened.append(1))
    main_window.open_path("/plugins/sample")
    assert opened == [1]
    dispose()
    main_window.open_path("/plugins/sample")
    assert main_window.statusBar().currentMessage() == "nothing provides /plugins/sample yet"


def test_status_bar_shows_sync_state(main_window):
    assert "Offline" in main_window.sync_label.text()
    main_window.set_sync_state("Synced 2 minutes ago", True)
    assert main_window.sync_label.text() == "Synced 2 minutes ago"


def test_window_geometry_page_and_splitter_persist(qtbot, core, tmp_path):
    path = str(tmp_path / "persist.ini")
    first = MainWindow(core.services, settings=QSettings(path, QSettings.Format.IniFormat))
    qtbot.addWidget(first)
    first.resize(1111, 777)
    first.show()
    first.show_page("companies")
    first.lists["companies"].splitter.setSizes([300, 700])
    first.lists["companies"].table.setColumnWidth(0, 333)
    sizes = first.lists["companies"].splitter.sizes()
    first.close()
    second = MainWindow(core.services, settings=QSettings(path, QSettings.Format.IniFormat))
    qtbot.addWidget(second)
    second.show()
    # the offscreen screen is small, so Qt fits the saved geometry to it: compare with what a
    # fresh window makes of the saved bytes, and with the 1280x800 a window starts with
    reference = MainWindow(core.services, settings=QSettings(str(tmp_path / "other.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(reference)
    reference.show()
    reference.restoreGeometry(QSettings(path, QSettings.Format.IniFormat).value("window/geometry"))
    assert second.size() == reference.size() and (second.width(), second.height()) != (1280, 800)
    reference.shutdown()
    assert second.current_page() == "companies"
    restored = second.lists["companies"].splitter.sizes()  # scaled to the window, same proportion
    assert round(restored[0] / sum(restored), 1) == round(sizes[0] / sum(sizes), 1) == 0.3
    assert second.lists["companies"].table.columnWidth(0) == 333
    second.shutdown()


def test_edits_elsewhere_refresh_the_open_list(qtbot, main_window, services):
    main_window.show_page("contacts")
    model = main_window.lists["contacts"].model
    qtbot.waitUntil(lambda: model.count_known)
    services.contacts.create(first_name="From", last_name="Elsewhere")  # e.g. a plugin or sync
    qtbot.waitUntil(lambda: model.rowCount() == 1, timeout=5000)


def test_screenshot_renders_a_view(home, core, tmp_path):
    core.services.contacts.create(first_name="Ada", last_name="Lovelace")
    target = tmp_path / "shot.png"
    assert main(["--home", str(home.root), "--screenshot", str(target), "--view", "contacts",
                 "--size", "1000x700"]) == 0
    image = QImage(str(target))
    assert (image.width(), image.height()) == (1000, 700)


def test_screenshot_refuses_an_unknown_view(home, capsys):
    assert main(["--home", str(home.root), "--screenshot", "x.png", "--view", "nope"]) == 2
    assert "--view: 'nope' is invalid: must be one of today, contacts" in capsys.readouterr().err


def test_smoke_test_opens_every_view(home, capsys):
    assert main(["--home", str(home.root), "--smoke-test", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert set(report["views"]) == {"today", "contacts", "companies", "leads", "deals", "activities", "plugins"}
