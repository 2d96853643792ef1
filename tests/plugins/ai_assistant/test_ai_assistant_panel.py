"""The panel offscreen: a streamed conversation, a proposal card approved, the scores.

With ``CRM_AI_SCREENSHOTS=DIR`` it also saves the PNGs used in docs/images/.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ai_fake_provider import Turn
from conftest import STAGE


class Window:
    """The main window as ctx.ui sees it."""

    def __init__(self):
        self.status = []

    def open_record(self, entity, record_id):
        pass

    def show_status(self, text, timeout_ms=4000):
        self.status.append(text)


def build(a, qtbot):
    from crm_desktop.ui.plugins.ui_facade import ui_factory

    a.window = Window()
    a.host.set_ui_factory(ui_factory(a.window, a.host))  # the panel works through ctx.ui, as in the app
    panel_spec = a.host.panels("ai-assistant")[0]
    panel = a.host.guard("ai-assistant", "panel factory", panel_spec.factory, None)
    qtbot.addWidget(panel)
    panel.resize(1180, 720)
    return panel


def history(services):
    for i, (start, end) in enumerate([("Negotiation", "Won")] * 5 + [("Proposal", "Won")] * 2
                                     + [("Proposal", "Lost")] * 4 + [("Qualified", "Lost")] * 3):
        d = services.deals.create(title=f"Closed {i}", stage_id=STAGE[start], amount_cents=(i + 1) * 400_000)
        if i % 3 == 0:
            services.activities.log("call", f"call {i}", deal_id=d.id)
        services.deals.move_to_stage(d.id, STAGE[end])


def test_conversation_card_and_scores(assistant, provider, qtbot, tmp_path):
    a = assistant()
    history(a.services)
    a.services.activities.log("visit", "Site visit at Acme", deal_id=a.ids["renewal"], contact_id=a.ids["ann"])
    now = datetime.now(timezone.utc)
    a.services.activities.schedule("call", "Call the fleet buyer back", now - timedelta(days=2),
                                   deal_id=a.ids["fleet"])
    a.services.activities.schedule("visit", "Visit Acme Tools", now + timedelta(minutes=5), contact_id=a.ids["ann"])
    provider.turns += [
        Turn(calls=[("get_record", {"type": "deal", "id": a.ids["renewal"]})]),
        Turn(text="Acme agreed to 15,000. I propose moving the renewal to Negotiation and a task to send the quote.",
             calls=[("update_deal", {"deal_id": a.ids["renewal"], "stage": "Negotiation", "amount": 15000,
                                     "expected_close": "2027-01-29"}),
                    ("create_task", {"subject": "Send the renewal quote to Ann", "deal_id": a.ids["renewal"],
                                     "contact_id": a.ids["ann"], "due_at": "2026-12-04T09:00:00"})]),
        Turn(text="Acme agreed to 15,000 EUR for the renewal. I proposed moving it to Negotiation with a close date "
                  "of 29 January, and a task to send Ann the quote on Friday. Approve them on the right."),
    ]
    panel = build(a, qtbot)
    panel.show()
    # the record action puts the deal in front of the assistant
    action = a.host.record_actions("ai-assistant", "deal")[0]
    assert action.title == "Ask the assistant about this"
    assert action.callback(a.ctx, [a.ids["renewal"]]) == "deal Acme renewal"
    assert panel.about_label.text() == "About: deal Acme renewal" and panel.about_label.isVisible()
    panel.input.setPlainText("Ann said yes to 15k on the renewal. Update it and remind me to send the quote.")
    panel.send_button.click()
    qtbot.waitUntil(lambda: panel._cancel is None and "Approve them" in panel.transcript.toPlainText(), timeout=10000)
    text = panel.transcript.toPlainText()
    assert "You\nAnn said yes to 15k" in text and "Approve them on the right." in text
    assert [c.proposal.title for c in panel.cards] == ["Update deal: Acme renewal",
                                                       "Create task: Send the renewal quote to Ann"]
    assert panel.status.text() == "2 proposals to review"
    # the first request carried the open record fenced as data
    assert "source=open-record" in provider.requests[0]["messages"][1]["content"]
    panel.refresh_scores()
    qtbot.waitUntil(lambda: panel.refresh_button.isEnabled() and panel.scores.topLevelItemCount() == 3,
                    timeout=10000)
    rows = [(panel.scores.topLevelItem(i).text(0), panel.scores.topLevelItem(i).text(1))
            for i in range(panel.scores.topLevelItemCount())]
    assert rows[0][0] == "Acme pilot"  # in Negotiation, where most deals were won
    assert panel.scores_note.text() == "Learnt from 7 won and 7 lost deals."
    shots = Path(os.environ.get("CRM_AI_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    qtbot.wait(50)
    assert panel.grab().save(str(shots / "ai-assistant-chat.png"))
    panel.tabs.setCurrentIndex(1)
    qtbot.wait(50)
    assert panel.grab().save(str(shots / "ai-assistant-scores.png"))
    panel.tabs.setCurrentIndex(0)
    # approving one card applies it; rejecting the other changes nothing
    before_tasks = a.services.activities.count()
    panel.cards[0].approve.click()
    assert panel.cards[0].status.text() == "Applied" and not panel.cards[0].approve.isEnabled()
    deal = a.services.deals.get(a.ids["renewal"])
    assert (deal.stage_name, deal.amount_cents, str(deal.expected_close)) == ("Negotiation", 1_500_000, "2027-01-29")
    panel.cards[1].reject.click()
    assert panel.cards[1].status.text() == "Rejected: nothing was changed"
    assert a.services.activities.count() == before_tasks
    qtbot.wait(50)
    assert panel.grab().save(str(shots / "ai-assistant-decided.png"))


def test_send_without_a_provider_says_how_to_set_one_up(assistant, qtbot):
    a = assistant(use_provider=False)
    panel = build(a, qtbot)
    assert panel.provider_label.text().startswith("No model provider set up: scores and next actions work offline.")
    panel.input.setPlainText("hello")
    panel.send_button.click()
    assert panel.status.text().startswith("No model provider is set up: set baseUrl and model")
    assert panel.input.toPlainText() == "hello"  # nothing lost


def test_cancel_from_the_panel(assistant, provider, qtbot):
    a = assistant()
    provider.turns.append(Turn(text="a long story that never ends", hang_after_chunks=2))
    panel = build(a, qtbot)
    panel.input.setPlainText("tell me a story")
    panel.send_button.click()
    assert provider.hung.wait(10)
    qtbot.waitUntil(lambda: "a long" in panel.transcript.toPlainText(), timeout=5000)
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: panel._cancel is None, timeout=3000)
    assert panel.status.text() == "The request was cancelled."
    assert "a long" in panel.transcript.toPlainText() and panel.send_button.isEnabled()
    assert sys.modules["crm_plugins.ai_assistant.store"].recent_exchanges(a.ctx)[0]["status"] == "cancelled"
