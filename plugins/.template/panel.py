"""The panel's widgets (PySide6 is imported here only)."""

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget


def build_panel(ctx, parent=None):
    widget = QWidget(parent)
    layout = QVBoxLayout(widget)
    layout.addWidget(QLabel(f"{ctx.settings.get('greeting')} from {ctx.name}"))
    layout.addStretch(1)
    return widget
