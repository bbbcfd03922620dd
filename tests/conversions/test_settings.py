"""The conversions settings come from the environment (config/conversions.py), with documented defaults."""

import environ

from config.conversions import read


def test_defaults_and_values_from_the_environment(monkeypatch):
    for name in ("CONVERSIONS_YANDEX_TARGET", "CONVERSIONS_QUALIFIED_STAGE_IDS", "YANDEX_METRIKA_COUNTER",
                 "YANDEX_METRIKA_TOKEN", "YANDEX_METRIKA_UPLOAD_MINUTES", "CONVERSIONS_GOOGLE_NAME",
                 "CONVERSIONS_QUALIFIED_GOAL"):
        monkeypatch.delenv(name, raising=False)
    assert read(environ.Env()) == {
        "CONVERSIONS_YANDEX_TARGET": "crm_sale", "CONVERSIONS_GOOGLE_NAME": "CRM sale",
        "CONVERSIONS_QUALIFIED_STAGE_IDS": [], "CONVERSIONS_QUALIFIED_GOAL": "crm_qualified",
        "YANDEX_METRIKA_COUNTER": "", "YANDEX_METRIKA_TOKEN": "", "YANDEX_METRIKA_UPLOAD_MINUTES": 60}
    monkeypatch.setenv("CONVERSIONS_QUALIFIED_STAGE_IDS", "1003,1004")
    monkeypatch.setenv("YANDEX_METRIKA_UPLOAD_MINUTES", "15")
    monkeypatch.setenv("YANDEX_METRIKA_COUNTER", "44147844")
    values = read(environ.Env())
    assert (values["CONVERSIONS_QUALIFIED_STAGE_IDS"], values["YANDEX_METRIKA_UPLOAD_MINUTES"],
            values["YANDEX_METRIKA_COUNTER"]) == ([1003, 1004], 15, "44147844")
