"""The deals pipeline: a column per stage (count and total), cards you drag between stages."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from PySide6.QtCore import QMimeData, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QDrag, QFont, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QFrame, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QScrollArea,
    QStyle, QStyledItemDelegate, QVBoxLayout, QWidget,
)

from crm_desktop.services.paging import ListQuery, Sort
from crm_desktop.ui import theme
from crm_desktop.ui.entities import money, when
from crm_desktop.ui.executor import InlineExecutor
from crm_desktop.ui.theme import named

log = logging.getLogger(__name__)

DEAL_MIME = "application/x-crm-deal-id"
CARDS_PER_COLUMN = 60
_DEAL_ROLE = Qt.ItemDataRole.UserRole + 10


class DealCardDelegate(QStyledItemDelegate):
    """Paints a deal as a card: title, company, amount and expected close."""

    HEIGHT = 78

    def sizeHint(self, option, index) -> QSize:
        return QSize(option.rect.width() or 220, self.HEIGHT)

    def paint(self, painter: QPainter, option, index) -> None:
        deal = index.data(_DEAL_ROLE)
        if deal is None:
            return super().paint(painter, option, index)
        c = theme.current
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        card = option.rect.adjusted(4, 3, -4, -3)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.setPen(QPen(QColor(c["accent"] if selected else c["border"]), 1.2))
        painter.setBrush(QColor(c["panel"]))
        painter.drawRoundedRect(card, 8, 8)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(c["accent"]))
        painter.drawRoundedRect(QRect(card.left(), card.top() + 8, 3, card.height() - 16), 1.5, 1.5)
        inner = card.adjusted(12, 8, -10, -8)
        bold = QFont(option.font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(QColor(c["text"]))
        metrics = painter.fontMetrics()
        painter.drawText(QRect(inner.left(), inner.top(), inner.width(), 18), Qt.AlignmentFlag.AlignLeft,
                         metrics.elidedText(deal.title, Qt.TextElideMode.ElideRight, inner.width()))
        painter.setFont(option.font)
        painter.setPen(QColor(c["muted"]))
        painter.drawText(QRect(inner.left(), inner.top() + 20, inner.width(), 18), Qt.AlignmentFlag.AlignLeft,
                         painter.fontMetrics().elidedText(deal.company_name or "—", Qt.TextElideMode.ElideRight,
                                                          inner.width()))
        painter.setPen(QColor(c["text"]))
        painter.setFont(bold)
        painter.drawText(QRect(inner.left(), inner.bottom() - 17, inner.width(), 18), Qt.AlignmentFlag.AlignLeft,
                         money(deal.amount_cents, deal.currency))
        painter.setFont(option.font)
        painter.setPen(QColor(c["muted"]))
        painter.drawText(QRect(inner.left(), inner.bottom() - 17, inner.width(), 18), Qt.AlignmentFlag.AlignRight,
                         when(deal.expected_close))
        painter.restore()


class StageColumn(QFrame):
    """One stage: header with count and total, the cards, and a drop target for cards."""

    deal_dropped = Signal(str, str)   # deal id, stage id
    deal_opened = Signal(str)

    def __init__(self, stage, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("KanbanColumn")
        self.stage = stage
        self.setAcceptDrops(True)
        self.setFixedWidth(250)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 10, 8, 8)
        layout.setSpacing(4)
        self.header = named(QLabel(stage.name), "KanbanHeader")
        self.total = named(QLabel(), "KanbanTotal")
        layout.addWidget(self.header)
        layout.addWidget(self.total)
        self.cards = _CardList(self)
        self.cards.itemActivated.connect(lambda item: self.deal_opened.emit(item.data(_DEAL_ROLE).id))
        layout.addWidget(self.cards, 1)
        self.more = named(QLabel(), "Muted")
        self.more.hide()
        layout.addWidget(self.more)

    def set_deals(self, deals, count: int, total_cents: int, currency: str = "EUR") -> None:
        self.cards.clear()
        for deal in deals:
            item = QListWidgetItem(deal.title)
            item.setData(_DEAL_ROLE, deal)
            self.cards.addItem(item)
        self.header.setText(f"{self.stage.name}  ·  {count}")
        prob = f"  ·  {self.stage.probability}%" if self.stage.probability else ""
        self.total.setText(f"{money(total_cents, currency)}{prob}")
        self.more.setText(f"+ {count - len(deals)} more in the Deals list")
        self.more.setVisible(count > len(deals))

    def deal_ids(self) -> list[str]:
        return [self.cards.item(i).data(_DEAL_ROLE).id for i in range(self.cards.count())]

    # drag and drop: cards carry their deal id; any column accepts them
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasFormat(DEAL_MIME):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasFormat(DEAL_MIME):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        if not event.mimeData().hasFormat(DEAL_MIME):
            return
        deal_id = bytes(event.mimeData().data(DEAL_MIME)).decode()
        event.acceptProposedAction()
        if deal_id not in self.deal_ids():
            self.deal_dropped.emit(deal_id, self.stage.id)


class _CardList(QListWidget):
    def __init__(self, column: StageColumn):
        super().__init__(column)
        self._column = column
        self.setObjectName("KanbanList")
        self.setItemDelegate(DealCardDelegate(self))
        self.setDragEnabled(True)
        self.setAcceptDrops(False)  # drops land on the column, whatever part of it is under the mouse
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setUniformItemSizes(True)

    def startDrag(self, actions) -> None:
        item = self.currentItem()
        if item is None:
            return
        mime = QMimeData()
        mime.setData(DEAL_MIME, item.data(_DEAL_ROLE).id.encode())
        drag = QDrag(self)
        drag.setMimeData(mime)
        rect = self.visualItemRect(item)
        drag.setPixmap(self.viewport().grab(rect))
        drag.exec(Qt.DropAction.MoveAction)


class PipelineBoard(QWidget):
    """A kanban board of the deals of one pipeline (chosen in the combo box)."""

    changed = Signal()
    open_record = Signal(str, str)
    status = Signal(str)

    def __init__(self, services, *, executor=None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Page")
        self._services = services
        self._executor = executor if executor is not None else InlineExecutor()
        self.loading = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Pipeline"))
        self.pipeline = QComboBox()
        self.pipeline.setMinimumWidth(200)
        bar.addWidget(self.pipeline)
        bar.addStretch(1)
        self.summary = named(QLabel(), "Muted")
        bar.addWidget(self.summary)
        layout.addLayout(bar)
        self.columns_host = QWidget()
        self.columns_layout = QHBoxLayout(self.columns_host)
        self.columns_layout.setContentsMargins(0, 0, 0, 0)
        self.columns_layout.setSpacing(10)
        scroll = QScrollArea(widgetResizable=True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.columns_host)
        layout.addWidget(scroll, 1)
        self.columns: dict[str, StageColumn] = {}
        # the pipelines arrive with the first board read (on the reader), not from the GUI thread
        self.pipeline.currentIndexChanged.connect(lambda *_: self.reload())
        self.reload()

    def reload(self) -> None:
        """Read the board again on the executor's reader; the columns are rebuilt when it answers."""
        pipeline_id = self.pipeline.currentData()
        self.loading = True
        self._executor.read(lambda: read_board(self._services, pipeline_id), done=self._show, failed=self._failed,
                            context=self, key=("board", id(self)), label="pipeline board")

    def _failed(self, exc: BaseException) -> None:
        self.loading = False
        self.status.emit(f"Could not read the pipeline: {exc}")

    def _show(self, board: "BoardData") -> None:
        self.loading = False
        self._set_pipelines(board)
        for column in self.columns.values():
            column.setParent(None)
            column.deleteLater()
        self.columns.clear()
        while self.columns_layout.count():
            self.columns_layout.takeAt(0)
        if board.pipeline_id is None:
            return
        all_count = all_cents = 0
        for stage, deals, count, cents in board.stages:
            column = StageColumn(stage)
            all_count += count
            all_cents += cents if not stage.is_lost else 0
            column.set_deals(deals, count, cents)
            column.deal_dropped.connect(self.move_deal)
            column.deal_opened.connect(lambda deal_id: self.open_record.emit("deal", deal_id))
            self.columns[stage.id] = column
            self.columns_layout.addWidget(column)
        self.columns_layout.addStretch(1)
        self.summary.setText(f"{all_count} deals · {money(all_cents)} in play")

    def _set_pipelines(self, board: "BoardData") -> None:
        """Fill the pipeline choice from the board's answer (without asking for another board)."""
        known = [(self.pipeline.itemText(i), self.pipeline.itemData(i)) for i in range(self.pipeline.count())]
        blocked = self.pipeline.blockSignals(True)
        try:
            if known != board.pipelines:
                self.pipeline.clear()
                for name, pipeline_id in board.pipelines:
                    self.pipeline.addItem(name, pipeline_id)
            index = self.pipeline.findData(board.pipeline_id)
            if index >= 0:
                self.pipeline.setCurrentIndex(index)
        finally:
            self.pipeline.blockSignals(blocked)

    def move_deal(self, deal_id: str, stage_id: str) -> None:
        """The drop: move the deal to the stage (on the writer thread), then redraw the board."""
        def moved(deal) -> None:
            self.reload()
            self.status.emit(f"Moved “{deal.title}” to {deal.stage_name}")
            self.changed.emit()

        def refused(exc: BaseException) -> None:
            self.status.emit(f"Could not move the deal: {exc}")

        self._executor.write(lambda: self._services.deals.move_to_stage(deal_id, stage_id), done=moved,
                             failed=refused, context=self, label="move deal")


@dataclass(frozen=True)
class BoardData:
    """One pipeline's columns as plain data: (stage, first deals, count, total cents) per stage."""

    pipeline_id: str | None
    stages: list = field(default_factory=list)
    #: every pipeline as (name, id), for the choice above the board
    pipelines: list = field(default_factory=list)


def read_board(services, pipeline_id: str | None) -> BoardData:
    """The board's queries, run off the UI thread (no ``pipeline_id``: the first pipeline's board)."""
    s = services
    pipelines = [(p.name, p.id) for p in s.pipelines.all()]
    if pipeline_id is None:
        if not pipelines:
            return BoardData(None)
        pipeline_id = pipelines[0][1]
    totals = s.deals.stage_totals(pipeline_id)
    stages = []
    for stage in s.pipelines.stages(pipeline_id):
        count, cents = totals.get(stage.id, (0, 0))
        deals = s.deals.list(ListQuery(stage_id=stage.id), Sort("amount", True), limit=CARDS_PER_COLUMN).items
        stages.append((stage, deals, count, cents))
    return BoardData(pipeline_id, stages, pipelines)
