"""The main window: a shell that composes the views, menus, search and status bar.

It owns no business logic. Views are made elsewhere (:mod:`list_view`, :mod:`kanban`,
:mod:`today`); plugins add pages, menu entries, routes and record actions through the
methods below (the interface agreed with :mod:`crm_desktop.ui.plugins.adapter`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QByteArray, QSettings, QSize, Qt, QTimer
from PySide6.QtGui import QIcon, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication, QDockWidget, QFileDialog, QFrame, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QMainWindow,
    QMenu, QMessageBox, QStackedWidget, QTabWidget, QVBoxLayout, QWidget,
)

from crm_desktop.ui import theme
from crm_desktop.ui.dispatch import MainThreadDispatcher
from crm_desktop.ui.dispatch import install as install_dispatcher
from crm_desktop.ui.dispatch import uninstall as uninstall_dispatcher
from crm_desktop.ui.entities import PAGE_OF_ENTITY, SPECS
from crm_desktop.ui.executor import DataExecutor
from crm_desktop.ui.global_search import GlobalSearch
from crm_desktop.ui.kanban import PipelineBoard
from crm_desktop.ui.list_view import EntityListView
from crm_desktop.ui.resources import icon
from crm_desktop.ui.theme import named
from crm_desktop.ui.today import TodayView

log = logging.getLogger(__name__)

MENU_TITLES = ("File", "Edit", "View", "Tools", "Plugins", "Help")
CORE_PAGES = ("today", "contacts", "companies", "leads", "deals", "activities")
_SIDEBAR_ICON_COLOR = "#c3c9dc"


class MainWindow(QMainWindow):
    """The window a field rep lives in all day."""

    def __init__(self, services, *, settings: QSettings | None = None, home=None, now=None,
                 executor: DataExecutor | None = None, dispatcher: MainThreadDispatcher | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.services = services
        # The composition root (app.build_window) makes and installs both; a window built on its
        # own (tests) makes its own. The window owns them from here on and stops them on shutdown.
        if dispatcher is None:
            dispatcher = install_dispatcher(services.events)
        dispatcher.setParent(self)
        self.dispatcher = dispatcher
        self.executor = executor if executor is not None else DataExecutor()
        self.executor.setParent(self)
        self._shut_down = False
        self.home = home
        self.settings = settings if settings is not None else QSettings()
        self.setWindowTitle("crm-desktop")
        self.setWindowIcon(icon("deals", "#3b6cf6", 32))
        self.resize(1280, 800)
        self._menus: dict[str, QMenu] = {}
        self._pages: dict[str, QWidget] = {}
        self._page_titles: dict[str, str] = {}
        self._docks: dict[str, QDockWidget] = {}
        self._sidebar_items: dict[str, QListWidgetItem] = {}
        self._plugin_heading: QListWidgetItem | None = None
        self._routes: dict[str, Callable[[], None]] = {}
        self._record_action_providers: list[Callable[[str, list[str], QMenu], None]] = []

        for title in MENU_TITLES:
            self.menu(title)
        self._build_central()
        self._build_status_bar()
        self._build_core_pages(now)
        self._build_menus()
        self._refresh_timer = QTimer(self, singleShot=True, interval=250)
        self._refresh_timer.timeout.connect(self._refresh_dirty)
        self._dirty: set[str] = set()
        # on the GUI thread through the one dispatcher, whichever thread committed
        self._unsubscribe = services.events.subscribe(self._on_bus_event, main_thread=True)
        self.restore_state()

    # -- building -------------------------------------------------------------------------

    def _build_central(self) -> None:
        root = QWidget()
        layout = QHBoxLayout(root)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        sidebar = named(QFrame(), "Sidebar")
        sidebar.setFixedWidth(208)
        side = QVBoxLayout(sidebar)
        side.setContentsMargins(0, 0, 0, 10)
        side.addWidget(named(QLabel("◆  crm-desktop"), "Brand"))
        self.sidebar = named(QListWidget(), "SidebarList")
        self.sidebar.setIconSize(QSize(18, 18))
        self.sidebar.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.sidebar.currentItemChanged.connect(self._sidebar_changed)
        side.addWidget(self.sidebar, 1)
        layout.addWidget(sidebar)

        main = QWidget()
        main_layout = QVBoxLayout(main)
        main_layout.setContentsMargins(0, 0, 0, 0)
        main_layout.setSpacing(0)
        top = named(QFrame(), "TopBar")
        top_layout = QHBoxLayout(top)
        top_layout.setContentsMargins(18, 10, 18, 10)
        self.page_title = named(QLabel(), "PageTitle")
        top_layout.addWidget(self.page_title)
        top_layout.addStretch(1)
        self.search = GlobalSearch(self.services)
        self.search.open_record.connect(self.open_record)
        top_layout.addWidget(self.search)
        main_layout.addWidget(top)
        self.stack = _PageStack()
        main_layout.addWidget(self.stack, 1)
        layout.addWidget(main, 1)
        self.setCentralWidget(root)
        QShortcut(QKeySequence("Ctrl+K"), self).activated.connect(self.focus_search)

    def _build_status_bar(self) -> None:
        self.sync_icon = QLabel()
        self.sync_label = QLabel()
        bar = self.statusBar()
        bar.addPermanentWidget(self.sync_icon)
        bar.addPermanentWidget(self.sync_label)
        self.set_sync_state("Offline · changes are saved on this computer", False)

    def _build_core_pages(self, now) -> None:
        self.today = TodayView(self.services, demo_available=True, now=now,
                               executor=self.executor)
        self.today.open_record.connect(self.open_record)
        self.today.demo_requested.connect(self.load_demo_data)
        self.today.import_requested.connect(lambda: self.import_file("contact"))
        self._add_core_page("today", self.today, "Today", "today")
        self.lists: dict[str, EntityListView] = {}
        for key in ("contacts", "companies", "leads", "deals", "activities"):
            spec = SPECS[key]
            view = EntityListView(spec, self.services, settings=self.settings,
                                  record_actions=self.call_record_action_providers, executor=self.executor)
            view.open_record.connect(self.open_record)
            view.status.connect(self.show_status)
            view.changed.connect(self.today.reload)
            self.lists[key] = view
            if key == "deals":
                self.board = PipelineBoard(self.services, executor=self.executor)
                self.board.open_record.connect(self.open_record)
                self.board.status.connect(self.show_status)
                self.board.changed.connect(view.refresh)
                self.deals_tabs = named(QTabWidget(), "Page")
                self.deals_tabs.setDocumentMode(True)
                self.deals_tabs.addTab(self.board, icon("deals"), "Pipeline")
                self.deals_tabs.addTab(view, icon("contacts"), "List")
                self._add_core_page(key, self.deals_tabs, spec.title, spec.icon)
            else:
                self._add_core_page(key, view, spec.title, spec.icon)

    def _add_core_page(self, key: str, widget: QWidget, title: str, icon_name: str) -> None:
        item = QListWidgetItem(icon(icon_name, _SIDEBAR_ICON_COLOR, 18), title)
        item.setData(Qt.ItemDataRole.UserRole, key)
        row = self.sidebar.row(self._plugin_heading) if self._plugin_heading is not None else self.sidebar.count()
        self.sidebar.insertItem(row, item)
        self._register_page(key, widget, title, item)

    def _register_page(self, key: str, widget: QWidget, title: str, item: QListWidgetItem) -> None:
        self._pages[key] = widget
        self._page_titles[key] = title
        self._sidebar_items[key] = item
        self.stack.addWidget(widget)
        if self.sidebar.currentItem() is None:
            self.sidebar.setCurrentItem(item)

    def _build_menus(self) -> None:
        file = self.menu("File")
        for entity in ("contact", "company"):
            label = "Contacts" if entity == "contact" else "Companies"
            file.addAction(icon("import"), f"Import {label.lower()}…", lambda e=entity: self.import_file(e))
        file.addSeparator()
        for entity in ("contact", "company"):
            label = "Contacts" if entity == "contact" else "Companies"
            file.addAction(icon("export"), f"Export {label.lower()}…", lambda e=entity: self.export_file(e))
        file.addSeparator()
        self.save_action = file.addAction(QIcon(), "Save record",
                                          QKeySequence.StandardKey.Save, self.save_current_record)
        self.save_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        file.addSeparator()
        file.addAction("Quit", QKeySequence.StandardKey.Quit, self.close)
        edit = self.menu("Edit")
        edit.addAction(icon("plus"), "New record", QKeySequence.StandardKey.New, self.new_record)
        edit.addAction(icon("search"), "Search everything", QKeySequence("Ctrl+K"), self.focus_search)
        view = self.menu("View")
        for n, key in enumerate(CORE_PAGES, start=1):
            view.addAction(self._page_titles[key], QKeySequence(f"Ctrl+{n}"), self._shows_page(key))
        view.addSeparator()
        themes = view.addMenu("Theme")
        for mode in ("system", "light", "dark"):
            action = themes.addAction(mode.capitalize(), self._sets_theme(mode))
            action.setCheckable(True)
            action.setChecked(self.theme_mode() == mode)
        tools = self.menu("Tools")
        tools.addAction("Refresh all views", QKeySequence("Ctrl+Shift+R"), self.refresh_all)  # F5 is Sync
        help_menu = self.menu("Help")
        help_menu.addAction("User guide", lambda: self.show_status("The user guide is docs/user-guide.md"))
        help_menu.addAction("About crm-desktop", self._about)

    # -- the interface plugins use (agreed with the Qt plugin adapter) -----------------------------

    def _shows_page(self, key: str) -> Callable[[], None]:
        """A menu action's slot that shows page ``key``."""
        return lambda: self.show_page(key)

    def _sets_theme(self, mode: str) -> Callable[[], None]:
        """A menu action's slot that switches to theme ``mode``."""
        return lambda: self.set_theme(mode)

    def menu(self, title: str) -> QMenu:
        """The top-level menu ``title``; an unknown title makes a new menu placed before Help."""
        if title in self._menus:
            return self._menus[title]
        menu = QMenu(title, self)
        menu.setObjectName(f"menu_{title}")
        help_menu = self._menus.get("Help")
        if help_menu is not None:
            self.menuBar().insertMenu(help_menu.menuAction(), menu)
        else:
            self.menuBar().addMenu(menu)
        self._menus[title] = menu
        return menu

    def add_page(self, key: str, widget: QWidget, title: str, *, icon: QIcon | None = None,
                 area: str = "tab") -> None:
        """Add a plugin page: "tab" in the central stack under the sidebar's Plugins heading,
        "dock" in a dock widget."""
        if key in self._pages or key in self._docks:
            self.remove_page(key)
        if area == "dock":
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock_{key}")
            dock.setWidget(widget)
            self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
            self._docks[key] = dock
            return
        if self._plugin_heading is None:
            self._plugin_heading = QListWidgetItem("PLUGINS")
            self._plugin_heading.setFlags(Qt.ItemFlag.NoItemFlags)
            self.sidebar.addItem(self._plugin_heading)
        item = QListWidgetItem(icon if icon is not None else _plugin_icon(), title)
        item.setData(Qt.ItemDataRole.UserRole, key)
        self.sidebar.addItem(item)
        self._register_page(key, widget, title, item)

    def remove_page(self, key: str) -> None:
        """Remove a page added with :meth:`add_page` (its widget is deleted later)."""
        dock = self._docks.pop(key, None)
        if dock is not None:
            widget = dock.widget()
            self.removeDockWidget(dock)
            dock.deleteLater()
            if widget is not None:
                widget.deleteLater()
            return
        page = self._pages.pop(key, None)
        item = self._sidebar_items.pop(key, None)
        self._page_titles.pop(key, None)
        if item is not None:
            was_current = self.sidebar.currentItem() is item
            self.sidebar.takeItem(self.sidebar.row(item))
            if was_current:
                self.show_page("today")
        if page is not None:
            self.stack.removeWidget(page)
            page.deleteLater()
        plugin_keys = [k for k in self._pages if k not in CORE_PAGES]
        if not plugin_keys and self._plugin_heading is not None:
            self.sidebar.takeItem(self.sidebar.row(self._plugin_heading))
            self._plugin_heading = None

    def show_page(self, key: str) -> None:
        """Bring a page (or dock) to the front."""
        if key in self._docks:
            self._docks[key].show()
            self._docks[key].raise_()
            return
        item = self._sidebar_items.get(key)
        if item is None:
            self.show_status(f"no page {key!r}")
            return
        self.sidebar.setCurrentItem(item)

    def current_page(self) -> str | None:
        item = self.sidebar.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def page(self, key: str) -> QWidget | None:
        return self._pages.get(key) or (self._docks[key].widget() if key in self._docks else None)

    def register_path(self, path: str, opener: Callable[[], None]) -> Callable[[], None]:
        """Route a manifest menu path like ``/plugins/sample`` to ``opener``; returns the disposer."""
        self._routes[path] = opener

        def dispose() -> None:
            if self._routes.get(path) is opener:
                del self._routes[path]

        return dispose

    def open_path(self, path: str) -> None:
        opener = self._routes.get(path)
        if opener is None:
            self.show_status(f"nothing provides {path} yet")
            return
        opener()

    def add_record_action_provider(self, provider: Callable[[str, list[str], QMenu], None]) -> Callable[[], None]:
        """``provider(entity, ids, menu)`` is called whenever a record context menu is built."""
        self._record_action_providers.append(provider)

        def dispose() -> None:
            if provider in self._record_action_providers:
                self._record_action_providers.remove(provider)

        return dispose

    def call_record_action_providers(self, entity: str, ids: list[str], menu: QMenu) -> None:
        for provider in list(self._record_action_providers):
            try:
                provider(entity, list(ids), menu)
            except Exception:  # one plugin's bug must not break the menu
                log.exception("record action provider %r failed", provider)

    def set_sync_state(self, text: str, online: bool | None) -> None:
        """The status bar's sync indicator (None: unknown)."""
        colour = {True: "#2fa36b", False: "#8a93a6", None: "#e0a526"}[online]
        self.sync_icon.setPixmap(icon("cloud" if online else "cloud-off", colour, 16).pixmap(16, 16))
        self.sync_label.setText(text)

    def show_status(self, text: str, timeout_ms: int = 4000) -> None:
        self.statusBar().showMessage(text, timeout_ms)

    # -- navigation and actions ------------------------------------------------------------------

    def _sidebar_changed(self, current: QListWidgetItem | None, previous) -> None:
        if current is None:
            return
        key = current.data(Qt.ItemDataRole.UserRole)
        leaving = self._list_of_page(previous.data(Qt.ItemDataRole.UserRole)) if previous is not None else None
        if leaving is not None and self._page_of_item(current) is not None:
            # unsaved edits on the page being left: ask first; Cancel stays, Save switches once saved
            if not leaving.detail.confirm_leave(lambda: self.show_page(key)):
                self.sidebar.blockSignals(True)
                self.sidebar.setCurrentItem(previous)
                self.sidebar.blockSignals(False)
                return
        widget = self._pages.get(key)
        if widget is not None:
            self.stack.setCurrentWidget(widget)
            self.page_title.setText(self._page_titles.get(key, ""))

    def _list_of_page(self, key) -> EntityListView | None:
        return self.lists.get(key) if key in getattr(self, "lists", {}) else None

    def _page_of_item(self, item) -> str | None:
        key = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        return key if key in self._pages else None

    def current_list(self) -> EntityListView | None:
        """The list page in front (for the deals page: its List tab), or None."""
        key = self.current_page()
        view = self._list_of_page(key)
        if key == "deals" and self.deals_tabs.currentWidget() is not view:
            return None
        return view

    def save_current_record(self) -> None:
        """Ctrl+S: save the record shown in the page in front."""
        view = self.current_list()
        if view is None:
            self.show_status("Nothing to save here")
            return
        view.detail.save()

    def unsaved_views(self) -> list[EntityListView]:
        return [v for v in self.lists.values() if v.detail.is_dirty()]

    def open_record(self, entity: str, record_id: str) -> None:
        """Show a record in its entity's page (from search, Today, related lists)."""
        key = PAGE_OF_ENTITY.get(entity)
        if key is None:
            return
        self.show_page(key)
        if self.current_page() != key:
            return  # the user chose to stay with unsaved edits
        if key == "deals":
            self.deals_tabs.setCurrentWidget(self.lists["deals"])
        self.search.popup.hide()
        if not self.lists[key].show_record_id(record_id):
            self.show_status(f"That {entity} no longer exists")

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def new_record(self) -> None:
        key = self.current_page()
        if key not in self.lists:
            key = "contacts"
            self.show_page(key)
        if key == "deals":
            self.deals_tabs.setCurrentWidget(self.lists["deals"])
        self.lists[key].new_record()

    def refresh_all(self) -> None:
        self._dirty.update(CORE_PAGES)
        self._refresh_dirty()

    def _on_bus_event(self, event) -> None:
        if not self._shut_down:
            self._on_event(event.name, event.payload)

    def _on_event(self, name: str, payload) -> None:
        entity = name.split(".", 1)[0]
        key = PAGE_OF_ENTITY.get(entity)
        if key is not None:
            self._dirty.add(key)
        if name.startswith("import.") or name.startswith("merge") or name.startswith("demo"):
            self._dirty.update(CORE_PAGES)
        self._dirty.add("today")
        self._refresh_timer.start()  # coalesce a burst of events into one refresh

    def _refresh_dirty(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for key in dirty:
            if key in self.lists:
                self.lists[key].refresh()
        if "deals" in dirty:
            self.board.reload()
        if "today" in dirty:
            self.today.reload()

    def import_file(self, entity: str, path: str | None = None) -> None:
        from crm_desktop.ui.import_dialog import ImportDialog, importer_available

        if not importer_available():
            self.show_status("Import is not available in this build")
            return
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, f"Import {entity}s", str(Path.home()),
                                                  "Contacts (*.csv *.vcf);;All files (*)")
            if not path:
                return
        ImportDialog(self.services, entity, Path(path), parent=self).exec()
        self.refresh_all()

    def export_file(self, entity: str) -> None:
        """Ask where to, then export on the executor with a progress dialog (Cancel keeps the old file)."""
        from crm_desktop.ui import export_dialog

        path = export_dialog.choose_export_path(self, entity)
        if path is None:
            return

        def exported(count: int) -> None:
            plural = "companies" if entity == "company" else f"{entity}s"
            self.show_status(f"Exported {count:,} {plural} to {path}".replace(",", "\u2009"), 8000)

        export_dialog.export_to(self, self.services, entity, path, executor=self.executor, done=exported)

    def load_demo_data(self) -> None:
        """Fill an empty database with sample records (the welcome view's first button), on the
        writer thread: the window keeps painting while they are made."""
        from crm_desktop.ui.demo import load_demo_data

        self.today.welcome.demo_button.setEnabled(False)
        self.show_status("Loading demo data…", 0)

        def loaded(message: str) -> None:
            self.today.welcome.demo_button.setEnabled(True)
            self.show_status(message)
            self.refresh_all()
            for view in self.lists.values():
                view._fill_filters()

        def failed(exc: BaseException) -> None:
            self.today.welcome.demo_button.setEnabled(True)
            self.show_status(f"Demo data could not be loaded: {exc}", 10000)

        self.executor.write(lambda: load_demo_data(self.services), done=loaded, failed=failed, context=self,
                            label="demo data")

    def theme_mode(self) -> str:
        return str(self.settings.value("theme", "system"))

    def set_theme(self, mode: str) -> None:
        self.settings.setValue("theme", mode)
        app = QApplication.instance()
        if isinstance(app, QApplication):
            theme.apply_theme(app, mode)
        for menu_action in self.menu("View").actions():
            sub = menu_action.menu()
            if isinstance(sub, QMenu) and menu_action.text() == "Theme":
                for action in sub.actions():
                    action.setChecked(action.text().lower() == mode)

    def _about(self) -> None:
        from crm_desktop import __version__

        QMessageBox.about(self, "About crm-desktop",
                          f"crm-desktop {__version__}\nOffline-first CRM for field sales reps.")

    # -- persistence -------------------------------------------------------------------------

    def restore_state(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        state = self.settings.value("window/state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)
        page = self.settings.value("window/page")
        if page in CORE_PAGES:
            self.show_page(str(page))

    def save_state(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("window/page", self.current_page() or "today")
        for view in self.lists.values():
            view.save_layout()
        self.settings.sync()

    def shutdown(self) -> None:
        """Save the layout and stop background work and event delivery (once; closing the
        window and quitting the app both call it)."""
        if self._shut_down:
            return
        self._shut_down = True
        self.save_state()
        self._unsubscribe()
        uninstall_dispatcher(self.services.events, self.dispatcher)
        self.search.close_reader()
        for view in self.lists.values():
            view.model.close()
        self.executor.stop()  # a write already running finishes first (it is the user's data)

    def closeEvent(self, event) -> None:
        for view in ([] if self._shut_down else self.unsaved_views()):
            # Save closes the window once saved; Cancel keeps it open; Discard goes on to the next
            if not view.detail.confirm_leave(self.close):
                event.ignore()
                return
        self.shutdown()
        super().closeEvent(event)


class _PageStack(QStackedWidget):
    """A stack as small as its current page allows: one wide plugin page must not make every
    page (and the window) wider than a small laptop screen."""

    def __init__(self) -> None:
        super().__init__()
        self.currentChanged.connect(lambda *_: self.updateGeometry())

    def minimumSizeHint(self) -> QSize:
        current = self.currentWidget()
        return current.minimumSizeHint() if current is not None else super().minimumSizeHint()

    def sizeHint(self) -> QSize:
        current = self.currentWidget()
        return current.sizeHint() if current is not None else super().sizeHint()


def _plugin_icon() -> QIcon:
    return icon("plugins", _SIDEBAR_ICON_COLOR, 18)
