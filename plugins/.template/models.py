"""The plugin's own tables: each name starts with "__PLUGIN_IDENT___"."""

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from crm_desktop.plugin_api import declarative_base_for

Base = declarative_base_for("__PLUGIN_NAME__")


class Note(Base):
    __tablename__ = "__PLUGIN_IDENT___notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(String(500))
