"""The tracker's source: plain ES5 (old browsers on small sites), small, and found where the product serves it."""

import gzip

from calmjs.parse import asttypes, es5
from calmjs.parse.walkers import Walker
from django.contrib.staticfiles import finders

from amocrm_sandbox.sites import TRACKER_JS

# Names of things that came after ES5 or are missing in old browsers; the script must not use them.
NEWER_THAN_ES5 = {
    "Promise", "fetch", "URL", "URLSearchParams", "Symbol", "Map", "Set", "WeakMap", "Proxy", "Reflect", "assign",
    "includes", "startsWith", "endsWith", "padStart", "repeat", "find", "findIndex", "closest", "matches",
    "dataset", "append", "prepend", "remove", "replaceAll", "trimStart", "trimEnd", "flat", "flatMap",
}


def test_the_tracker_is_plain_es5():
    program = es5(TRACKER_JS.read_text())  # a syntax error here: arrow functions, let/const, classes, `...`
    names = {node.value for node in Walker().filter(program, lambda node: isinstance(node, asttypes.Identifier))}
    assert names & NEWER_THAN_ES5 == set()


def test_the_es5_check_rejects_newer_syntax():
    for source in ("var f = () => 1;", "let x = 1;", "var s = `a`;", "var a = [...b];", "class A {}"):
        try:
            es5(source)
        except Exception as error:  # noqa: BLE001 — the parser's ECMASyntaxError
            assert type(error).__name__ == "ECMASyntaxError"
        else:
            raise AssertionError(f"parsed as ES5: {source}")


def test_the_tracker_can_be_pasted_inline():
    source = TRACKER_JS.read_text().lower()
    assert "</script" not in source and "<!--" not in source  # either would break an inline <script>


def test_the_tracker_stays_a_few_kilobytes():
    raw = TRACKER_JS.read_bytes()
    assert len(gzip.compress(raw, compresslevel=9)) <= 6 * 1024  # what whitenoise sends (it gzips at level 9)


def test_the_tracker_is_a_static_file_at_amocrm_tracker_js():
    assert finders.find("amocrm/tracker.js") == str(TRACKER_JS)
