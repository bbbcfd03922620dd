"""amocrm/'s own layers: transport → oauth → tokens → client → services, each importing only the ones before it.

The rules for every product package (size, first line, import cycles, citations) are in tests/test_layout.py.
"""

import re

from tests.test_layout import ROOT, import_graph, reachable

LAYERS = ["amocrm.transport", "amocrm.oauth", "amocrm.tokens", "amocrm.client", "amocrm.services"]


def test_the_layers_import_only_downwards():
    graph = import_graph("amocrm")
    # Each layer may use the ones before it, never one after (function-local imports count).
    for position, layer in enumerate(LAYERS):
        above = set(LAYERS[position + 1:])
        assert not reachable(graph, layer) & above, f"{layer} reaches {sorted(reachable(graph, layer) & above)}"


def test_the_transport_knows_nothing_of_tokens():
    graph = import_graph("amocrm")
    assert not reachable(graph, "amocrm.transport") & {"amocrm.tokens", "amocrm.oauth", "amocrm.client"}
    source = (ROOT / "amocrm" / "transport.py").read_text()
    assert not re.search(r"\bToken\b|refresh", source), "the transport must not handle tokens"
