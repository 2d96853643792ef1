"""The keyset-paged table model: counts from SQL, pages on demand, filters and sorts in SQL."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from conftest import wait_rows_loaded
from crm_desktop.services.paging import ListQuery, Sort
from crm_desktop.ui.entities import SPECS
from crm_desktop.ui.paged_model import PLACEHOLDER, PagedTableModel


@pytest.fixture
def people(services):
    acme = services.companies.create(name="Acme")
    with services.unit_of_work() as uow:  # one transaction: 450 fsyncs would dominate the test
        for i in range(450):
            services.contacts.create_in(uow, dict(first_name=f"P{i:03d}", last_name=f"Zed{i:03d}",
                                                  company_id=acme.id if i % 3 == 0 else None,
                                                  tags=["vip"] if i % 10 == 0 else []))


@pytest.fixture
def model(qtbot, services, people):
    m = PagedTableModel(services.contacts, list(SPECS["contacts"].columns), page_size=100)
    yield m
    m.close()


def names(model, rows):
    return [model.data(model.index(r, 0)) for r in rows]


def test_passes_qt_model_tester(qtbot, qtmodeltester, model):
    wait_rows_loaded(qtbot, model, rows=(0, 449))
    qtmodeltester.check(model)


def test_row_count_comes_from_sql_and_rows_load_in_order(qtbot, model):
    wait_rows_loaded(qtbot, model, rows=(0, 99, 100, 449))
    assert model.rowCount() == 450
    assert names(model, (0, 1, 449)) == ["P000 Zed000", "P001 Zed001", "P449 Zed449"]
    assert model.data(model.index(0, 1)) == "Acme"


def test_a_row_far_down_loads_without_loading_the_pages_before(qtbot, model):
    wait_rows_loaded(qtbot, model, rows=(0,))
    assert model.data(model.index(420, 0)) == PLACEHOLDER  # not there yet: a placeholder, no blocking
    wait_rows_loaded(qtbot, model, rows=(420,))
    assert model.data(model.index(420, 0)) == "P420 Zed420"
    assert not model.is_loaded(250)  # pages in between were never read


def test_filter_by_text_and_tag_in_sql(qtbot, model):
    model.set_query(ListQuery(tag="vip"))
    qtbot.waitUntil(lambda: model.count_known and model.rowCount() == 45)
    model.set_query(ListQuery(text="Zed449"))
    qtbot.waitUntil(lambda: model.count_known and model.rowCount() == 1)
    wait_rows_loaded(qtbot, model, rows=(0,))
    assert names(model, (0,)) == ["P449 Zed449"]


def test_header_sort_descending(qtbot, model):
    model.sort(0, Qt.SortOrder.DescendingOrder)
    wait_rows_loaded(qtbot, model, rows=(0, 449))
    assert names(model, (0, 449)) == ["P449 Zed449", "P000 Zed000"]
    assert model.sort_order == Sort("name", True)


def test_refresh_after_an_edit_keeps_rows_and_shows_new_count(qtbot, services, model):
    wait_rows_loaded(qtbot, model, rows=(0,))
    services.contacts.create(first_name="Aaron", last_name="Aardvark")
    model.refresh()
    assert model.data(model.index(0, 0)) == "P000 Zed000"  # old text stays until the fresh page comes
    qtbot.waitUntil(lambda: model.rowCount() == 451 and model.is_loaded(0))
    assert names(model, (0,)) == ["Aaron Aardvark"]
