"""Entity pages: create, edit with a validation error, related lists, quick actions, duplicates."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox, QMenu

from conftest import open_and_wait, show_and_wait, wait_rows_loaded
from crm_desktop.domain.enums import ActivityKind
from crm_desktop.ui.activity_dialog import ActivityDialog


def contacts_view(window):
    window.show_page("contacts")
    return window.lists["contacts"]


def test_create_a_contact_from_the_form(qtbot, main_window, services):
    view = contacts_view(main_window)
    view.new_button.click()
    form = view.detail.form
    form.inputs["first_name"].setText("Grace")
    form.inputs["last_name"].setText("Hopper")
    form.inputs["email"].setText("grace@navy.example")
    form.inputs["tags"].setText("vip, pioneer")
    qtbot.mouseClick(form.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.detail.title.text() == "Grace Hopper")  # saved on the writer thread
    assert form.visible_errors() == {}
    [contact] = services.contacts.list().items
    assert (contact.display_name, contact.email, contact.tags) == ("Grace Hopper", "grace@navy.example",
                                                                   ("pioneer", "vip"))
    assert view.detail.title.text() == "Grace Hopper"
    qtbot.waitUntil(lambda: view.model.rowCount() == 1)
    assert view.count_label.text() == "1 contacts"


def test_edit_with_an_invalid_email_shows_the_rule_beside_the_field(qtbot, main_window, services):
    contact = services.contacts.create(first_name="Ada", last_name="Lovelace", email="ada@example.com")
    view = contacts_view(main_window)
    show_and_wait(qtbot, view, contact.id)
    form = view.detail.form
    form.inputs["email"].setText("not-an-email")
    form.save_button.click()
    qtbot.waitUntil(lambda: not form.saving)
    errors = form.visible_errors()
    assert list(errors) == ["email"]
    assert "e-mail" in errors["email"].lower() or "email" in errors["email"].lower()
    assert form.inputs["email"].property("invalid") is True
    assert services.contacts.get(contact.id).email == "ada@example.com"  # nothing was saved
    form.inputs["email"].setText("ada@lovelace.example")
    form.save_button.click()
    qtbot.waitUntil(lambda: not form.saving)
    assert form.visible_errors() == {}
    assert services.contacts.get(contact.id).email == "ada@lovelace.example"


def test_a_contact_needs_a_name(qtbot, main_window, services):
    view = contacts_view(main_window)
    view.new_record()
    view.detail.form.save_button.click()
    qtbot.waitUntil(lambda: "last_name" in view.detail.form.visible_errors())
    assert "name is required" in view.detail.form.visible_errors()["last_name"]
    assert services.contacts.count() == 0


def test_company_shows_its_contacts_and_deals(qtbot, main_window, services):
    acme = services.companies.create(name="Acme GmbH", city="Berlin")
    services.contacts.create(first_name="Wile", last_name="Coyote", company_id=acme.id)
    services.deals.create(title="Rocket skates", company_id=acme.id, amount="1200")
    open_and_wait(qtbot, main_window, "company", acme.id)
    detail = main_window.lists["companies"].detail
    assert detail.title.text() == "Acme GmbH"
    contacts = detail.related_lists["contacts"]
    assert [contacts.item(i).text().split(" · ")[0] for i in range(contacts.count())] == ["Wile Coyote"]
    assert "Rocket skates" in detail.related_lists["deals"].item(0).text()
    assert detail.related.tabText(0) == "Contacts (1)"


def test_log_a_call_and_schedule_a_follow_up(qtbot, main_window, services):
    contact = services.contacts.create(first_name="Ada", last_name="Lovelace")
    view = contacts_view(main_window)
    show_and_wait(qtbot, view, contact.id)
    dialog = ActivityDialog(services, ActivityKind.CALL, {"contact_id": contact.id})
    dialog.subject.setText("Talked about engines")
    dialog.accept()
    follow = ActivityDialog(services, ActivityKind.TASK, {"contact_id": contact.id}, schedule=True)
    follow.subject.setText("Send the notes")
    follow.accept()
    view.detail._after_change()
    qtbot.waitUntil(lambda: len(view.detail.related_texts("activities")) == 2)
    texts = sorted(view.detail.related_texts("activities"))
    assert len(texts) == 2
    assert any("Call: Talked about engines" in t and t.startswith("✓") for t in texts)
    assert any("Task: Send the notes" in t and t.startswith("○") for t in texts)


def test_an_empty_subject_is_refused_in_the_log_dialog(services):
    contact = services.contacts.create(first_name="Ada", last_name="Lovelace")
    dialog = ActivityDialog(services, ActivityKind.NOTE, {"contact_id": contact.id})
    dialog.accept()
    assert not dialog.error.isHidden() and "Subject" in dialog.error.text()
    assert services.activities.count() == 0


def test_new_contact_that_looks_like_an_existing_one_shows_a_warning(qtbot, main_window, services):
    existing = services.contacts.create(first_name="Ada", last_name="Lovelace", email="ada@example.com")
    view = contacts_view(main_window)
    view.new_record()
    qtbot.keyClicks(view.detail.form.inputs["email"], "ADA@example.com")  # checked once typing pauses
    banner = view.detail.duplicates
    qtbot.waitUntil(lambda: not banner.isHidden())
    assert [m.contact_id for m in view.detail.last_duplicates] == [existing.id]
    assert not banner.isHidden() and "Ada Lovelace" in banner.text.text()
    assert not banner.merge_button.isEnabled()  # a record not yet saved cannot be merged


def test_merge_a_duplicate_into_the_existing_contact(qtbot, main_window, services, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    survivor = services.contacts.create(first_name="Ada", last_name="Lovelace", phone="+44 20 7946 0000")
    duplicate = services.contacts.create(first_name="Ada", last_name="Lovelace", phone="+44 20 7946 0000")
    services.activities.log("call", "Call with the duplicate", contact_id=duplicate.id)
    view = contacts_view(main_window)
    show_and_wait(qtbot, view, duplicate.id)
    view.detail.check_duplicates()
    qtbot.waitUntil(lambda: view.detail.duplicates.isVisible())
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    view.detail.duplicates.merge_button.click()
    qtbot.waitUntil(lambda: view.detail.record.id == survivor.id)
    assert services.contacts.find(duplicate.id) is None
    assert view.detail.record.id == survivor.id
    assert [a.subject for a in services.activities.for_record(contact_id=survivor.id)] == ["Call with the duplicate"]


def test_convert_a_lead_asks_first_then_links_what_it_created(qtbot, main_window, services, monkeypatch):
    import re

    from crm_desktop.ui import detail_panel

    lead = services.leads.create(title="Big fleet", first_name="Max", last_name="Power", company_name="Power AG",
                                 status="qualified")
    open_and_wait(qtbot, main_window, "lead", lead.id)
    detail = main_window.lists["leads"].detail
    button = detail.action_buttons["convert"]
    assert button.isEnabled()
    questions = []
    monkeypatch.setattr(detail_panel, "confirm", lambda parent, title, text, yes: questions.append(text) or False)
    button.click()  # the rep clicked by mistake and said Cancel: nothing happens
    assert questions and "Max Power" in questions[0] and "Power AG" in questions[0] and "Big fleet" in questions[0]
    qtbot.wait(100)
    assert services.leads.get(lead.id).converted_at is None

    monkeypatch.setattr(detail_panel, "confirm", lambda *a: True)
    button.click()
    qtbot.waitUntil(lambda: detail.conversion.isVisible())
    converted = services.leads.get(lead.id)
    assert converted.status == "converted"  # stored, not only shown: filters, sync and plugins see it
    assert services.contacts.get(converted.converted_contact_id).display_name == "Max Power"
    text = detail.conversion.text()
    links = dict((entity, rid) for entity, rid in re.findall(r'href="(\w+):([^"]+)"', text))
    assert links == {"contact": converted.converted_contact_id, "company": converted.converted_company_id,
                     "deal": converted.converted_deal_id}
    assert "Max Power" in text and "Power AG" in text and "Big fleet" in text
    # the lead reads Converted, in the panel and (after the refresh) in the list
    assert detail.subtitle.text().startswith("Converted")
    assert not button.isEnabled() and "converted already" in button.toolTip()
    leads = main_window.lists["leads"]
    qtbot.waitUntil(lambda: leads.model.rowCount() == 1 and leads.model.record(0) is not None
                    and leads.model.record(0).converted_at is not None)
    status_column = [c.title for c in leads.spec.columns].index("Status")
    assert leads.model.data(leads.model.index(0, status_column)) == "Converted"
    assert "Converted lead" in main_window.statusBar().currentMessage()
    # each name is a link that opens the record
    detail.conversion.linkActivated.emit(f"deal:{converted.converted_deal_id}")
    assert main_window.current_page() == "deals"
    deals = main_window.lists["deals"].detail
    qtbot.waitUntil(lambda: deals.record is not None and deals.record.id == converted.converted_deal_id)


def test_context_menu_asks_every_record_action_provider(qtbot, main_window, services):
    contact = services.contacts.create(first_name="Ada", last_name="Lovelace")
    seen = []
    dispose = main_window.add_record_action_provider(lambda entity, ids, menu: seen.append((entity, ids)))
    menu = QMenu()
    main_window.call_record_action_providers("contact", [contact.id], menu)
    assert seen == [("contact", [contact.id])]
    dispose()
    main_window.call_record_action_providers("contact", [contact.id], menu)
    assert len(seen) == 1


def test_filter_bar_filters_by_tag(qtbot, main_window, services):
    services.contacts.create(first_name="Ada", last_name="Lovelace", tags=["vip"])
    services.contacts.create(first_name="Bob", last_name="Builder")
    view = contacts_view(main_window)
    view._fill_filters()
    combo = view.filter_combos["tag"]
    qtbot.waitUntil(lambda: combo.findData("vip") > 0)  # the tags come from the reader
    combo.setCurrentIndex(combo.findData("vip"))
    qtbot.waitUntil(lambda: view.model.count_known and view.model.rowCount() == 1)
    wait_rows_loaded(qtbot, view.model)
    assert view.model.record(0).display_name == "Ada Lovelace"
