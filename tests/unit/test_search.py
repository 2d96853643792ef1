"""Full-text search: ranking, prefixes, and the index kept in step with every write."""

from __future__ import annotations

import sqlite3

import pytest

from crm_desktop.errors import ValidationError
from crm_desktop.services import search as search_module
from crm_desktop.services.search_query import fts_match_expression, ranking_tiers


def titles(hits):
    return [h.title for h in hits]


def test_search_finds_every_kind_of_record_by_prefix(services):
    acme = services.companies.create(name="Acme Rockets", city="Berlin")
    services.contacts.create(first_name="Wile", last_name="Coyote", email="wile@acme.example", company_id=acme.id)
    lead = services.leads.create(title="Roadrunner trap", company_name="Desert Ltd")
    services.deals.create(title="Rocket skates", company_id=acme.id)
    services.activities.create(kind="note", subject="Anvil order", body="ten rockets, delivered")
    hits = services.search.search("rock")
    # the contact (by its company's name) and the note (by its body) come after the names
    assert {h.entity for h in hits} == {"company", "deal", "activity", "contact"}
    assert {h.entity for h in hits[:2]} == {"company", "deal"}
    assert [h.id for h in services.search.search("roadrun")] == [lead.id]
    assert titles(services.search.search("coy")) == ["Wile Coyote"]
    assert titles(services.search.search("wile@acme.example")) == ["Wile Coyote"]


def test_name_matches_rank_above_matches_in_other_fields(services):
    services.contacts.create(first_name="Anna", last_name="Berg", notes="introduced by Marta")
    services.contacts.create(first_name="Marta", last_name="Klein")
    services.contacts.create(first_name="Jo", last_name="Marta-Lind")
    hits = services.search.search("marta")
    assert titles(hits) == ["Marta Klein", "Jo Marta-Lind", "Anna Berg"]
    assert [h.tier for h in hits] == [0, 2, 3]


def test_whole_word_beats_longer_word_with_the_same_start(services):
    services.contacts.create(first_name="Mayer", last_name="Old")
    services.contacts.create(first_name="Ma", last_name="Long")
    assert titles(services.search.search("ma"))[0] == "Ma Long"


def test_entity_search_uses_the_same_ranking(services):
    services.contacts.create(first_name="Lena", last_name="Stone", notes="Paul's friend")
    services.contacts.create(first_name="Paul", last_name="Smith")
    assert [c.first_name for c in services.contacts.search("paul")] == ["Paul", "Lena"]


def test_phone_is_found_with_or_without_spaces(services):
    services.contacts.create(first_name="Tel", last_name="Test", phone="+49 30 1234567")
    assert titles(services.search.search("+4930123")) == ["Tel Test"]
    assert titles(services.search.search("1234567")) == ["Tel Test"]


def test_typed_punctuation_is_never_fts_syntax(services):
    services.contacts.create(first_name="O'Brien", last_name="NEAR")
    for text in ['"', "NEAR(", "a OR b", "x:y", "*", "-", "^", "(((", "O'Brien"]:
        services.search.search(text)  # no FTS5 syntax error
    assert titles(services.search.search("near")) == ["O'Brien NEAR"]
    assert services.search.search("  ") == [] and services.search.search("") == []


def test_one_letter_words_match_whole_words_only(services):
    services.contacts.create(first_name="J", last_name="Smith")
    services.contacts.create(first_name="Jack", last_name="Smithers")
    assert titles(services.search.search("j smith")) == ["J Smith"]
    assert fts_match_expression("j smi") == '"j" "smi"*'


def test_updates_renames_and_tombstones_reach_the_index(services):
    acme = services.companies.create(name="Acme")
    anna = services.contacts.create(first_name="Anna", last_name="Alt", company_id=acme.id)
    deal = services.deals.create(title="Fleet", company_id=acme.id)
    services.contacts.update(anna.id, last_name="Neu")
    assert titles(services.search.search("alt")) == []
    assert titles(services.search.search("neu")) == ["Anna Neu"]
    services.companies.update(acme.id, name="Globex")
    assert {h.id for h in services.search.search("globex")} == {acme.id, anna.id, deal.id}
    assert services.search.search("acme") == []
    services.contacts.delete(anna.id)
    assert {h.id for h in services.search.search("globex")} == {acme.id, deal.id}
    assert services.contacts.search("anna") == []


def test_rows_inserted_in_bulk_by_sql_are_searchable(services, core):
    conn = sqlite3.connect(core.home.db_path)
    with conn:
        conn.executemany(
            "INSERT INTO contacts (id, first_name, last_name, name_key, created_at, updated_at, version) "
            "VALUES (?, ?, ?, ?, '2026-01-01 00:00:00', '2026-01-01 00:00:00', 0)",
            [(f"id-{i:05d}", "Bulk", f"Person{i}", f"person{i} bulk") for i in range(500)])
    conn.close()
    assert len(services.search.search("bulk", limit=1000)) == 500
    assert titles(services.search.search("person417")) == ["Bulk Person417"]


def test_broad_prefix_returns_the_limit_newest_first_with_name_matches_first(services, core, monkeypatch):
    # A tier with more matches than RANK_CAP is read newest first instead of by bm25.
    monkeypatch.setattr(search_module, "RANK_CAP", 20)
    for i in range(40):
        services.contacts.create(first_name="Mara", last_name=f"N{i:02d}")
    services.contacts.create(first_name="Zed", last_name="Other", notes="mara mentioned")
    hits = services.search.search("ma", limit=10)
    assert titles(hits) == [f"Mara N{i:02d}" for i in range(39, 29, -1)]
    assert titles(services.search.search("ma", limit=100))[-1] == "Zed Other"


def test_limit_and_entities_filter(services):
    for i in range(5):
        services.companies.create(name=f"Nord {i}")
    services.contacts.create(first_name="Nord", last_name="Person")
    assert len(services.search.search("nord", limit=3)) == 3
    assert {h.entity for h in services.search.search("nord", entities=("contact",))} == {"contact"}
    with pytest.raises(ValidationError, match="entities.*must be one of contact, company, lead"):
        services.search.search("nord", entities=("planet",))


def test_ranking_tiers_quote_every_word():
    tiers = ranking_tiers('ma "x', ("name",))
    assert [t.expression for t in tiers] == [
        '{name} : (^ "ma" "x")', '{name} : (^ "ma"* "x")', '{name} : ("ma"* "x")', '"ma"* "x"']
