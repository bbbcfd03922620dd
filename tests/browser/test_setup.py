"""The browser setup itself: a missing Chromium is a failure with instructions, never a skip."""

import pytest

from amocrm_sandbox import chromium


def test_a_missing_chromium_fails_the_test_and_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(chromium, "CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(pytest.fail.Exception, match=r"Chromium at /nonexistent/chromium(.|\n)*bin/ensure-chromium"):
        chromium.require()


def test_an_installed_chromium_passes(monkeypatch, tmp_path):
    binary = tmp_path / "chromium"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setattr(chromium, "CHROMIUM", str(binary))
    chromium.require()
    assert chromium.missing() is None
