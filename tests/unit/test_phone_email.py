"""E-mail validation (email-validator) and phone keys (phonenumbers) as a user meets them."""

from __future__ import annotations

import json
import random

import pytest

from crm_desktop.core import Core
from crm_desktop.domain.phones import library_phone_key, phone_key
from crm_desktop.domain.validation import check_email
from crm_desktop.errors import ValidationError
from crm_desktop.paths import Home
from crm_desktop.user_settings import phone_region


@pytest.mark.parametrize("address", [
    "łukasz.anderson.1373@alpen-analytics.example",  # what demo data writes (RFC 6531 local part)
    "josé.garcía@correo.example",
    "info@bücher.de",  # IDN domain
    "用户@例子.广告",
    "first.o'neil+crm@sub.example.co.uk",
])
def test_internationalised_addresses_are_accepted(services, address):
    contact = services.contacts.create(first_name="I", last_name="Nternational", email=address)
    assert services.contacts.get(contact.id).email == address


@pytest.mark.parametrize("address, words", [
    ("anna.example.com", "@-sign"),
    ("anna@localhost", "period"),
    ("anna@@example.com", "@-sign"),
    ("anna@example.test", "special-use"),
    ("an na@example.com", "invalid characters"),
])
def test_bad_addresses_are_refused_with_the_library_reason(services, address, words):
    with pytest.raises(ValidationError) as err:
        services.contacts.create(first_name="A", last_name="B", email=address)
    assert "e-mail address" in str(err.value) and words in str(err.value)


def test_domain_comes_back_normalised():
    assert check_email("Anna@EXAMPLE.com") == "Anna@example.com"
    assert check_email("info@xn--bcher-kva.de") == "info@bücher.de"


def test_fast_path_agrees_with_the_library():
    import email_validator

    rng = random.Random(3)
    chars = "abcXYZ09.-_+!#'"
    for _ in range(3000):
        local = "".join(rng.choice(chars) for _ in range(rng.randrange(1, 70)))
        domain = rng.choice(["example.com", "EXAMPLE.org", "bücher.de", "a.test", "x..y", "-a.com", "a",
                             "sub.domain.example", "xn--bcher-kva.de", "1.2.3.4", "a_b.com"])
        address = f"{local}@{domain}"
        try:
            expected = email_validator.validate_email(address, check_deliverability=False).normalized
        except email_validator.EmailNotValidError:
            expected = None
        try:
            got = check_email(address)
        except ValidationError:
            got = None
        assert got == expected, address


def test_same_number_in_different_spellings_is_one_duplicate_key():
    keys = {phone_key(p, "DE") for p in ("+49 30 1234567", "030 1234567", "0049 30 1234567",
                                         "+49 (0)30 1234567", "+49-30-123 45 67", "030/1234567")}
    assert keys == {"+49301234567"}


def test_same_digits_in_different_countries_are_different_numbers():
    # the old "last nine digits" rule called these two one person
    assert phone_key("+49 30 1234567") != phone_key("+43 30 1234567")
    assert phone_key("+1 212 555 0100") != phone_key("+44 212 555 0100")
    assert phone_key("030 1234567", "DE") != phone_key("030 1234567", "AT")


def test_without_a_region_national_numbers_compare_by_digits():
    assert phone_key("030 1234567") == phone_key("030-1234567") == "#0301234567"
    assert phone_key("12") is None


def test_shortcut_agrees_with_the_library_over_many_countries():
    import phonenumbers

    rng = random.Random(7)
    codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    for _ in range(5000):
        code = rng.choice(codes)
        national = "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 15)))
        sep = rng.choice([" ", "-", "", ".", "/"])
        text = f"+{code}{sep}{national[:3]}{sep}{national[3:]}".rstrip(sep)
        expected = library_phone_key(text)
        if expected is not None:
            assert phone_key(text) == expected, text


def _phones_one_by_one(values, region):
    """check_phone and phone_key value by value: what an import's phone column must give."""
    from crm_desktop.domain.validation import check_phone

    out, keys, bad = [], [], []
    for i, value in enumerate(values):
        try:
            text = check_phone(value, "phone", "contact")
        except ValidationError:
            out.append(None)
            keys.append(None)
            bad.append(i)
            continue
        out.append(text)
        keys.append(phone_key(text, region) if text else None)
    return out, keys, bad


def test_the_column_form_gives_phone_key_of_every_value():
    """An import's phone column (check_phone_column) keys every number as phone_key does, value by
    value: shortcut, library, digits."""
    import phonenumbers

    from crm_desktop.domain.validation import check_phone_column

    rng = random.Random(11)
    codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    texts = [None, "", "  ", "+1", "+49", "+4", "030 1234567", " +49 30 1234567 ", "(0)30-123", "+999 123",
             "+800 1234 5678", "+44 (0)20 7946 0958", "12345", "+49 030 1234567"]
    for _ in range(3000):
        code = rng.choice(codes)
        national = "".join(rng.choice("0123456789") for _ in range(rng.randrange(0, 19)))
        sep = rng.choice([" ", "-", "", ".", "/"])
        texts.append(f"+{code}{sep}{national[:3]}{sep}{national[3:]}".rstrip(sep))
    for region in (None, "DE", "us"):
        assert check_phone_column(texts, "phone", "contact", region) == _phones_one_by_one(texts, region)


def test_duplicate_check_uses_the_region_from_the_settings_file(tmp_path):
    home = Home(tmp_path / "h").ensure()
    home.settings_path.write_text(json.dumps({"phoneRegion": "AT"}), encoding="utf-8")
    assert phone_region(home.settings_path) == "AT"
    with Core.open(home) as core:
        core.services.contacts.create(first_name="Wien", last_name="Office", phone="+43 1 2345678")
        like = core.services.duplicates.contacts_like
        assert [m.reason for m in like(first_name="x", phone="01 2345678")] == ["same phone"]
        assert like(first_name="x", phone="+49 1 2345678") == []


def test_a_bad_region_setting_falls_back_to_the_locale(tmp_path, monkeypatch):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"phoneRegion": "Germany"}), encoding="utf-8")
    monkeypatch.setenv("LC_ALL", "de_AT.UTF-8")
    assert phone_region(path) == "AT"
    monkeypatch.setenv("LC_ALL", "C")
    monkeypatch.setenv("LC_CTYPE", "C")
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setattr("locale.getlocale", lambda: (None, None))
    assert phone_region(path) is None


def test_the_one_pass_phone_column_gives_what_check_phone_and_phone_key_give():
    """check_phone_column (an import's phone column: cleaned value and duplicate key in one pass)
    answers as check_phone followed by phone_key, value by value, refusals included."""
    import phonenumbers

    from crm_desktop.domain.validation import check_phone_column

    rng = random.Random(5)
    codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    values = [None, "", "  ", "+1", "+12", "+123", "+49", " +49 30 1234567 ", "0170 1234567", "+49 (0)30 123",
              "+49\u00a030 1234567", "+4930123456789012345678901234567890123", "call me", "+49 30 1234567 x12",
              "+49 30 12\x07", 49301234567, "12", "+49 030 1234567", "+800 1234 5678", "+44 (0)20 7946 0958"]
    for _ in range(4000):
        code = rng.choice(codes)
        national = "".join(rng.choice("0123456789") for _ in range(rng.randrange(0, 19)))
        sep = rng.choice([" ", "  ", "-", "", ".", "/", "\u00a0"])
        values.append(rng.choice(["", " ", "\t"]) + f"+{code}{sep}{national[:3]}{sep}{national[3:]}".rstrip(sep))
    for region in (None, "DE", "us"):
        assert check_phone_column(values, "phone", "contact", region) == _phones_one_by_one(values, region)


def test_an_e_mail_column_gives_what_check_email_gives_value_by_value():
    """check_emails (an import's column; a column of common addresses is checked as a whole) refuses
    and normalises every value as check_email does, whichever way the column goes."""
    from crm_desktop.domain.validation import check_email, check_emails

    def one_by_one(values):
        out, bad = [], []
        for i, value in enumerate(values):
            try:
                out.append(check_email(value))
            except ValidationError:
                out.append(None)
                bad.append(i)
        return out, bad

    rng = random.Random(3)
    locals_ = ["ann", "a.b", "x+tag", "o'neil", "a..b", ".a", "a.", "łukasz", "a b", "a@b", "", "a" * 65, "A"]
    domains = ["example.com", "Example.COM", "bücher.de", "localhost", "example", "ex ample.com", "", "a.test",
               "xn--bcher-kva.de", "sub.example.org"]
    plain = [f"user.{i}@example.com" for i in range(50)] + ["", "  ", " ann@example.org "]
    assert check_emails(plain) == one_by_one(plain)
    for _ in range(300):
        column = list(plain)
        for _ in range(rng.randrange(0, 3)):
            column[rng.randrange(len(column))] = (f"{rng.choice(locals_)}@{rng.choice(domains)}"
                                                  if rng.random() < 0.9 else rng.choice([None, 5, "a\nb@example.com"]))
        assert check_emails(column) == one_by_one(column), column
