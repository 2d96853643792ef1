"""The push audit's CSV export: cells a spreadsheet would run as formulas are neutralised (OWASP)."""

import csv
import io
from datetime import datetime, timezone

import pytest

from crm_server.activity import ActivityFilter, safe_cell, write_csv
from crm_server.errors import ServerError
from crm_server.models import PushAudit


@pytest.mark.parametrize("value", ["=HYPERLINK(\"http://x\")", "+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"])
def test_formula_starts_are_neutralised(value):
    assert safe_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["dana", "plugin:hello", "", None, "a=b"])
def test_other_cells_are_kept(value):
    assert safe_cell(value) == ("" if value is None else value)


def test_write_csv_neutralises_every_column():
    row = PushAudit(at=datetime(2026, 1, 2, tzinfo=timezone.utc), username="=evil", device_id="d1",
                    actor="agent:@bot", entity="contact", record_id="r1", op="update", status="rejected",
                    fields=["email"], message="-1 is not an e-mail address")
    out = io.StringIO()
    assert write_csv(out, [row], {"d1": "+laptop"}) == 1
    header, line = list(csv.reader(io.StringIO(out.getvalue())))
    assert header[:3] == ["time", "user", "device"]
    assert line[1:4] == ["'=evil", "'+laptop", "agent:@bot"] and line[-1] == "'-1 is not an e-mail address"


def test_filters_refuse_bad_input_with_one_sentence():
    with pytest.raises(ServerError, match="since 'yesterday' is not a date like 2026-01-31"):
        ActivityFilter.parse({"since": "yesterday"})
    with pytest.raises(ServerError, match="actor 'robot' is not one of user, plugin, agent"):
        ActivityFilter.parse({"actor": "robot"})
    with pytest.raises(ServerError, match="since is after until"):
        ActivityFilter.parse({"since": "2026-02-01", "until": "2026-01-01"})
