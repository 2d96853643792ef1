"""The assistant's panel: a chat, the proposal cards, and the scores / next actions.

Requests to the model and scoring run off the GUI thread (``ctx.ui.run_in_background``); streamed
text and the results come back to the GUI thread as plain data through Qt signals of a bridge
object, so a panel closed meanwhile just misses them. Approving or
rejecting a card is the rep's decision and the only way a proposal is applied.
"""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QFrame, QGridLayout, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPlainTextEdit, QPushButton, QScrollArea,
    QSplitter, QStackedWidget, QTabWidget, QTextBrowser, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget,
)

from . import actions, agent, focus, proposals, scoring, store
from .provider import CancelToken, ProviderError

_STYLE = """
#ai-assistant QFrame#card { border: 1px solid palette(mid); border-radius: 6px; background: palette(base); }
#ai-assistant QLabel#card-title { font-weight: 600; }
#ai-assistant QLabel#before { color: palette(dark); text-decoration: line-through; }
#ai-assistant QLabel#after { font-weight: 600; }
#ai-assistant QTreeWidget::item { padding: 3px 0; }
#ai-assistant QListWidget::item { padding: 4px 2px; }
#ai-assistant QLabel#header { font-size: 15px; font-weight: 600; }
#ai-assistant QLabel#muted { color: palette(dark); }
#ai-assistant QLabel#about { background: palette(alternate-base); border: 1px solid palette(mid);
                              border-radius: 10px; padding: 2px 8px; }
"""


class _Bridge(QObject):
    """Signals a worker thread emits; Qt delivers them on the GUI thread."""

    delta = Signal(str)
    proposal = Signal(object)
    tool = Signal(object)
    finished = Signal(object)
    scored = Signal(object)


def _factor_text(factor: Any) -> str:
    """``▲ stage Negotiation  6.0× odds`` (▲ raises the chance, ▼ lowers it)."""
    arrow = "▲" if factor.weight >= 0 else "▼"
    label = scoring.FEATURE_LABELS.get(factor.feature, factor.feature)
    return f"{arrow} {label} {factor.value}  ({factor.odds:.1f}× odds)"


def _emit(signal: Any, value: Any) -> None:
    """Emit from a worker; the panel may have been closed (or the plugin reloaded) meanwhile."""
    try:
        signal.emit(value)
    except RuntimeError:  # the bridge's C++ object is gone: nobody to tell
        pass


class ProposalCard(QFrame):
    """A proposal: exactly what will change, field by field, with Approve and Reject."""

    def __init__(self, ctx: Any, proposal: Any, on_decided: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx, self.proposal, self._on_decided = ctx, proposal, on_decided
        self.setObjectName("card")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        title = QLabel(proposal.title, self)
        title.setObjectName("card-title")
        title.setWordWrap(True)
        layout.addWidget(title)
        grid = QGridLayout()
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(4)
        for row, change in enumerate(proposal.changes):
            data = change.to_json()
            name = QLabel(change.label, self)
            name.setObjectName("muted")
            grid.addWidget(name, row, 0, Qt.AlignmentFlag.AlignTop)
            if data["before"] is None and proposal.record_id is not None:
                data["before"] = "—"  # an update that fills an empty field still shows the arrow
            if data["before"] is not None:
                before = QLabel(str(data["before"]), self)
                before.setObjectName("before")
                grid.addWidget(before, row, 1, Qt.AlignmentFlag.AlignTop)
                grid.addWidget(QLabel("→", self), row, 2, Qt.AlignmentFlag.AlignTop)
            after = QLabel(str(data["after"]), self)
            after.setObjectName("after")
            after.setWordWrap(True)
            grid.addWidget(after, row, 3 if data["before"] is not None else 1, 1,
                           1 if data["before"] is not None else 3, Qt.AlignmentFlag.AlignTop)
        grid.setColumnStretch(3, 1)
        layout.addLayout(grid)
        buttons = QHBoxLayout()
        self.status = QLabel("Waiting for your decision", self)
        self.status.setObjectName("muted")
        self.status.setWordWrap(True)
        self.approve = QPushButton("Approve", self)
        self.approve.setDefault(False)
        self.reject = QPushButton("Reject", self)
        buttons.addWidget(self.status, 1)
        buttons.addWidget(self.reject)
        buttons.addWidget(self.approve)
        layout.addLayout(buttons)
        self.approve.clicked.connect(self.do_approve)
        self.reject.clicked.connect(self.do_reject)
        if proposal.status != "pending":
            self._decided(proposal.status, proposal.error)

    def do_approve(self) -> None:
        try:
            done = proposals.approve(self.ctx, self.proposal.id)
        except proposals.ProposalError as exc:
            self._decided("failed", str(exc))
            return
        self._decided(done.status, None)

    def do_reject(self) -> None:
        try:
            proposals.reject(self.ctx, self.proposal.id)
        except proposals.ProposalError as exc:
            self._decided("failed", str(exc))
            return
        self._decided("rejected", None)

    def _decided(self, status: str, error: str | None) -> None:
        self.approve.setEnabled(False)
        self.reject.setEnabled(False)
        text = {"applied": "Applied", "rejected": "Rejected: nothing was changed"}.get(status, error or status)
        self.status.setText(text)
        self.status.setObjectName("muted" if status != "applied" else "after")
        self.status.setStyleSheet("")  # re-polish with the new object name
        if self._on_decided is not None:
            self._on_decided(self.proposal.id, status)


class AssistantPanel(QWidget):
    """The AI Assistant tab."""

    def __init__(self, ctx: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.setObjectName("ai-assistant")
        self.setStyleSheet(_STYLE)
        self._bridge = _Bridge(self)
        self._cancel: CancelToken | None = None
        self._about: tuple[str, str] | None = None
        self._reply_html = ""
        self._history: list[str] = []
        self.cards: list[ProposalCard] = []

        split = QSplitter(Qt.Orientation.Horizontal, self)
        split.addWidget(self._build_chat())
        split.addWidget(self._build_side())
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(split)

        self._bridge.delta.connect(self._on_delta)
        self._bridge.proposal.connect(self.add_card)
        self._bridge.tool.connect(self._on_tool)
        self._bridge.finished.connect(self._on_finished)
        self._bridge.scored.connect(self.show_scores)
        focus.register(self)
        pending = focus.pending(ctx)
        if pending is not None:
            self.focus_record(*pending)
        for p in store.pending_proposals(ctx):
            self.add_card(p)

    # ------------------------------------------------------------------ building
    def _build_chat(self) -> QWidget:
        box = QWidget(self)
        v = QVBoxLayout(box)
        v.setContentsMargins(0, 0, 4, 0)
        header = QLabel("Assistant", box)
        header.setObjectName("header")
        self.provider_label = QLabel(self._provider_text(), box)
        self.provider_label.setObjectName("muted")
        self.provider_label.setWordWrap(True)
        self.transcript = QTextBrowser(box)
        self.transcript.setOpenExternalLinks(False)
        self.transcript.setPlaceholderText("Ask about a customer, your agenda, or a deal. The assistant proposes "
                                           "changes; nothing is written until you approve it.")
        about_row = QHBoxLayout()
        self.about_label = QLabel("", box)
        self.about_label.setObjectName("about")
        self.about_label.hide()
        self.clear_about = QPushButton("Clear", box)
        self.clear_about.hide()
        self.clear_about.clicked.connect(self.forget_record)
        about_row.addWidget(self.about_label)
        about_row.addWidget(self.clear_about)
        about_row.addStretch(1)
        self.input = QPlainTextEdit(box)
        self.input.setPlaceholderText("e.g. Log my call with Ann Lee and remind me to send the quote on Friday")
        self.input.setFixedHeight(64)
        row = QHBoxLayout()
        self.status = QLabel("", box)
        self.status.setObjectName("muted")
        self.status.setWordWrap(True)
        self.cancel_button = QPushButton("Cancel", box)
        self.cancel_button.setEnabled(False)
        self.send_button = QPushButton("Send", box)
        row.addWidget(self.status, 1)
        row.addWidget(self.cancel_button)
        row.addWidget(self.send_button)
        self.send_button.clicked.connect(self.send)
        self.cancel_button.clicked.connect(self.cancel)
        for w in (header, self.provider_label, self.transcript):
            v.addWidget(w)
        v.addLayout(about_row)
        v.addWidget(self.input)
        v.addLayout(row)
        v.setStretchFactor(self.transcript, 1)
        return box

    def _build_side(self) -> QWidget:
        self.tabs = QTabWidget(self)
        cards = QWidget()
        self.cards_layout = QVBoxLayout(cards)
        self.cards_layout.setContentsMargins(4, 4, 4, 4)
        self.cards_layout.setSpacing(8)
        self.no_cards = QLabel("No proposals waiting. Changes the assistant suggests appear here for you to "
                               "approve or reject.", cards)
        self.no_cards.setObjectName("muted")
        self.no_cards.setWordWrap(True)
        self.cards_layout.addWidget(self.no_cards)
        self.cards_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(cards)
        self.tabs.addTab(scroll, "Proposals")

        scores = QWidget()
        sv = QVBoxLayout(scores)
        sv.setContentsMargins(4, 4, 4, 4)
        top = QHBoxLayout()
        self.scores_note = QLabel("Scores learn from your team's won and lost deals; no model needed.", scores)
        self.scores_note.setObjectName("muted")
        self.scores_note.setWordWrap(True)
        self.refresh_button = QPushButton("Refresh", scores)
        self.refresh_button.clicked.connect(self.refresh_scores)
        top.addWidget(self.scores_note, 1)
        top.addWidget(self.refresh_button)
        sv.addLayout(top)
        self.scores = QTreeWidget(scores)
        self.scores.setHeaderLabels(["Deal", "Win chance", "Why"])
        self.scores.setRootIsDecorated(False)
        self.scores.setAlternatingRowColors(True)
        self.scores.setColumnWidth(0, 150)
        self.scores.setColumnWidth(1, 80)
        self.scores.setWordWrap(True)
        self.scores.setUniformRowHeights(False)
        sv.addWidget(self.scores, 3)
        label = QLabel("Next actions", scores)
        label.setObjectName("card-title")
        sv.addWidget(label)
        self.next_list = QListWidget(scores)
        self.next_list.setWordWrap(True)
        sv.addWidget(self.next_list, 2)
        self.tabs.addTab(scores, "Scores && next actions")
        return self.tabs

    def _provider_text(self) -> str:
        base, model = self.ctx.settings.get("baseUrl"), self.ctx.settings.get("model")
        if base and model:
            return f"{model} · {base} · every change waits for your approval"
        return ("No model provider set up: scores and next actions work offline. For chat, set Provider URL and "
                "Model in the plugin's settings.")

    # ------------------------------------------------------------------ record focus
    def focus_record(self, entity: str, record_id: str, label: str) -> None:
        """Make a record the subject of the next question (the record action lands here)."""
        self._about = (entity, record_id)
        self.about_label.setText(f"About: {label}")
        self.about_label.show()
        self.clear_about.show()
        self.input.setFocus()
        self._bring_to_front()

    def forget_record(self) -> None:
        self._about = None
        self.about_label.hide()
        self.clear_about.hide()
        focus.clear(self.ctx)

    def _bring_to_front(self) -> None:
        child, parent = self, self.parentWidget()
        while parent is not None:
            if isinstance(parent, (QTabWidget, QStackedWidget)):
                parent.setCurrentWidget(child)
            child, parent = parent, parent.parentWidget()

    # ------------------------------------------------------------------ chat
    def send(self) -> None:
        text = self.input.toPlainText().strip()
        if not text:
            self.status.setText("Type what you want the assistant to do first.")
            return
        if self._cancel is not None:
            return
        try:
            runner = agent.agent_for(self.ctx)
        except ProviderError as exc:
            self.status.setText(str(exc))
            return
        self.input.clear()
        self._append("You", html.escape(text))
        self._reply_html = ""
        self._history.append("")  # the assistant's reply fills this slot as it streams
        self._set_busy(True)
        token = self._cancel = CancelToken()
        about, bridge = self._about, self._bridge

        def work() -> agent.ExchangeResult:
            return runner.ask(text, about=about, stream=True, on_delta=lambda delta: _emit(bridge.delta, delta),
                              on_event=lambda kind, data: _emit(bridge.proposal if kind == "proposal"
                                                                else bridge.tool, data),
                              cancel=token)

        def failed(exc: BaseException) -> None:  # an unexpected error still ends the request in the panel
            _emit(bridge.finished, agent.ExchangeResult(id="", reply="", status="failed",
                                                        error=f"{type(exc).__name__}: {exc}"))

        self.ctx.ui.run_in_background(work, on_done=lambda result: _emit(bridge.finished, result), on_error=failed)

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()
            self.status.setText("Cancelling…")

    def _set_busy(self, busy: bool) -> None:
        self.send_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.status.setText("Thinking…" if busy else "")

    def _on_delta(self, text: str) -> None:
        self._reply_html += html.escape(text)
        self._history[-1] = self._bubble("Assistant", self._reply_html)
        self._render()

    def _on_tool(self, record: dict) -> None:
        name = record["name"]
        if record["refused"]:
            self.status.setText(f"{name} refused: {record['result'].get('error', '')[:160]}")
        else:
            self.status.setText(f"Used {name}")

    def _on_finished(self, result: Any) -> None:
        self._cancel = None
        self._set_busy(False)
        if result.status in ("done", "capped"):
            self._history[-1] = self._bubble("Assistant", html.escape(result.reply).replace("\n", "<br>"))
            for draft in result.drafts:
                self._append("Draft e-mail (not sent)",
                             f"<b>To:</b> {html.escape(draft['to'] or '')}<br><b>Subject:</b> "
                             f"{html.escape(draft['subject'])}<br><br>{html.escape(draft['body']).replace(chr(10), '<br>')}")
            waiting = len(result.proposals)
            self.status.setText(f"{waiting} proposal{'s' if waiting != 1 else ''} to review" if waiting else "")
            if waiting:
                self.tabs.setCurrentIndex(0)
        else:
            partial = self._reply_html
            self._history[-1] = self._bubble("Assistant", (partial + "<br>" if partial else "")
                                             + f"<i>{html.escape(result.error or result.status)}</i>")
            self.status.setText(result.error or result.status)
        self._render()

    def _bubble(self, who: str, body_html: str) -> str:
        color = "palette(highlight)" if who == "You" else "palette(text)"
        return (f"<p style='margin:0 0 2px 0'><b style='color:{color}'>{html.escape(who)}</b></p>"
                f"<p style='margin:0 0 12px 0'>{body_html}</p>")

    def _append(self, who: str, body_html: str) -> None:
        self._history.append(self._bubble(who, body_html))
        self._render()

    def _render(self) -> None:
        self.transcript.setHtml("".join(self._history))
        bar = self.transcript.verticalScrollBar()
        bar.setValue(bar.maximum())

    # ------------------------------------------------------------------ proposals
    def add_card(self, proposal: Any) -> None:
        if any(c.proposal.id == proposal.id for c in self.cards):
            return
        card = ProposalCard(self.ctx, proposal, self._card_decided)
        self.cards.append(card)
        self.no_cards.hide()
        self.cards_layout.insertWidget(self.cards_layout.count() - 1, card)

    def _card_decided(self, proposal_id: str, status: str) -> None:
        self.status.setText({"applied": "Applied.", "rejected": "Rejected; nothing changed."}.get(status, status))

    # ------------------------------------------------------------------ scores
    def refresh_scores(self) -> None:
        """Score in the background; the list fills when it is done (one run at a time)."""
        if not self.refresh_button.isEnabled():
            return
        self.refresh_button.setEnabled(False)
        self.scores_note.setText("Scoring…")
        ctx, bridge = self.ctx, self._bridge

        def work() -> tuple[Any, Any]:
            by_deal, _ = scoring.activity_stats(ctx)
            return scoring.score_deals(ctx, stats=by_deal), actions.next_actions(ctx)

        ctx.ui.run_in_background(work, on_done=lambda outcome: _emit(bridge.scored, outcome),
                                 on_error=lambda exc: _emit(bridge.scored, exc))

    def show_scores(self, data: Any) -> None:
        self.refresh_button.setEnabled(True)
        if isinstance(data, BaseException):
            self.scores_note.setText(f"Scoring failed: {data}")
            return
        report, nexts = data
        self.scores.clear()
        self.scores_note.setText(report.message or f"Learnt from {report.won} won and {report.lost} lost deals.")
        for s in report.scores:
            why = "\n".join(_factor_text(f) for f in s.factors[:3]) or "no factor stands out"
            item = QTreeWidgetItem([s.name, f"{s.probability * 100:.0f}%", why])
            item.setData(0, Qt.ItemDataRole.UserRole, s.id)
            item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            item.setToolTip(2, "\n".join(str(f) for f in s.factors))
            self.scores.addTopLevelItem(item)
        self.next_list.clear()
        for a in nexts:
            item = QListWidgetItem(a.text)
            item.setData(Qt.ItemDataRole.UserRole, (a.entity, a.record_id))
            self.next_list.addItem(item)
        if not nexts:
            self.next_list.addItem("Nothing overdue or quiet.")

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if self.scores.topLevelItemCount() == 0 and self.refresh_button.isEnabled() \
                and self.scores_note.text().startswith("Scores learn"):
            self.refresh_scores()
