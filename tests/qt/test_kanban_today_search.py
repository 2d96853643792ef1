"""Pipeline board drag and drop, the Today view, the welcome view and the global search box."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from PySide6.QtCore import QMimeData, QPointF, Qt
from PySide6.QtGui import QDropEvent

from crm_desktop.ui.kanban import DEAL_MIME, PipelineBoard
from crm_desktop.ui.today import TodayView


def drop_deal(column, deal_id: str) -> QDropEvent:
    mime = QMimeData()
    mime.setData(DEAL_MIME, deal_id.encode())
    event = QDropEvent(QPointF(20, 60), Qt.DropAction.MoveAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    # QApplication only delivers drop events during a real drag (which blocks in QDrag.exec), so the
    # test hands the same event to the column's handlers the way Qt would: enter, then drop
    column.dragEnterEvent(event)
    column.dropEvent(event)
    return event


def test_columns_show_count_and_total_per_stage(qtbot, services):
    pipeline = services.pipelines.default()
    first = services.pipelines.stages(pipeline.id)[0]
    services.deals.create(title="Skates", amount="1200", stage_id=first.id)
    services.deals.create(title="Anvil", amount="300.50", stage_id=first.id)
    board = PipelineBoard(services)
    qtbot.addWidget(board)
    column = board.columns[first.id]
    assert column.header.text() == f"{first.name}  ·  2"
    assert column.total.text().startswith("1\u2009500 EUR") or column.total.text().startswith("1\u2009501 EUR")
    assert column.cards.item(0).text() == "Skates"  # biggest first


def test_drag_a_deal_to_another_stage(qtbot, services):
    pipeline = services.pipelines.default()
    stages = services.pipelines.stages(pipeline.id)
    deal = services.deals.create(title="Skates", amount="1200", stage_id=stages[0].id)
    board = PipelineBoard(services)
    qtbot.addWidget(board)
    board.show()
    with qtbot.waitSignal(board.changed):
        event = drop_deal(board.columns[stages[2].id], deal.id)
    assert event.isAccepted()
    assert services.deals.get(deal.id).stage_id == stages[2].id
    # the board was redrawn from the database: the card moved and the headers changed
    assert board.columns[stages[2].id].deal_ids() == [deal.id]
    assert board.columns[stages[0].id].deal_ids() == []
    assert board.columns[stages[2].id].header.text().endswith("·  1")


def test_dropping_something_else_changes_nothing(qtbot, services):
    pipeline = services.pipelines.default()
    stages = services.pipelines.stages(pipeline.id)
    deal = services.deals.create(title="Skates", stage_id=stages[0].id)
    board = PipelineBoard(services)
    qtbot.addWidget(board)
    mime = QMimeData()
    mime.setText(deal.id)
    event = QDropEvent(QPointF(5, 5), Qt.DropAction.MoveAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    board.columns[stages[1].id].dragEnterEvent(event)
    board.columns[stages[1].id].dropEvent(event)
    assert not event.isAccepted()
    assert services.deals.get(deal.id).stage_id == stages[0].id


def test_today_lists_overdue_today_upcoming_and_quiet_deals(qtbot, services):
    now = datetime.now(timezone.utc).astimezone().replace(hour=12, minute=0, second=0, microsecond=0)
    contact = services.contacts.create(first_name="Ada", last_name="Lovelace")
    services.activities.schedule("task", "Send quote", now - timedelta(days=2), contact_id=contact.id)
    services.activities.schedule("visit", "Plant tour", now + timedelta(hours=2), contact_id=contact.id)
    services.activities.schedule("meeting", "Quarterly review", now + timedelta(days=2))
    done = services.activities.schedule("task", "Already done", now - timedelta(days=1))
    services.activities.complete(done.id)
    services.deals.create(title="Forgotten deal")
    view = TodayView(services, now=now + timedelta(days=40))  # 40 days on, the deal has gone quiet
    qtbot.addWidget(view)
    assert view.currentWidget() is view.board

    def texts(section):
        return [section.list.item(i).text().split("   ·   ")[0] for i in range(section.list.count())]

    assert "Send quote" in texts(view.overdue)
    assert "Already done" not in texts(view.overdue)
    assert texts(view.stale) == ["Forgotten deal"]
    view_now = TodayView(services, now=now)
    qtbot.addWidget(view_now)
    assert texts(view_now.overdue) == ["Send quote"]
    assert texts(view_now.today) == ["Plant tour"]
    assert texts(view_now.upcoming) == ["Quarterly review"]
    assert view_now.tiles["overdue"].value.text() == "1"


def test_empty_database_shows_the_welcome_view_with_demo_data(qtbot, main_window, services):
    today = main_window.today
    assert today.currentWidget() is today.welcome
    assert today.welcome.demo_button.isEnabled()
    today.welcome.demo_button.click()
    # made on the writer thread: the button waits, the window keeps running
    assert not today.welcome.demo_button.isEnabled()
    qtbot.waitUntil(lambda: today.currentWidget() is today.board, timeout=30000)
    assert services.contacts.count() > 0
    assert main_window.statusBar().currentMessage() == "Demo data loaded"


def test_global_search_finds_across_entities_and_opens_the_record(qtbot, main_window, services):
    acme = services.companies.create(name="Müller Maschinen")
    contact = services.contacts.create(first_name="Hans", last_name="Müller", company_id=acme.id)
    services.deals.create(title="Müller press line", company_id=acme.id)
    search = main_window.search
    qtbot.keyClick(main_window, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    assert search.hasFocus()
    with qtbot.waitSignal(search.results_shown, check_params_cb=lambda text, n: text == "mul"):
        qtbot.keyClicks(search, "mul")  # diacritics fold: "mul" finds Müller
    entities = {entity for entity, _id, _text in search.results()}
    assert entities == {"company", "contact", "deal"}
    assert search.popup.isVisible()
    # narrow down to the contact, then open it with Enter
    with qtbot.waitSignal(search.results_shown, check_params_cb=lambda text, n: text == "mul hans"):
        qtbot.keyClicks(search, " hans")
    assert [(e, i) for e, i, _ in search.results()] == [("contact", contact.id)]
    qtbot.keyClick(search, Qt.Key.Key_Return)
    assert main_window.current_page() == "contacts"
    qtbot.waitUntil(lambda: main_window.lists["contacts"].detail.title.text() == "Hans Müller")  # read off the GUI
    assert not search.popup.isVisible()


def test_search_says_when_nothing_matches(qtbot, main_window, services):
    services.contacts.create(first_name="Hans", last_name="Müller")
    with qtbot.waitSignal(main_window.search.results_shown):
        main_window.search.setText("zzzz")
    assert main_window.search.results() == []
    assert "No match" in main_window.search.popup.item(0).text()
