"""Step contract attributes are declared on the class; steps whose scope or dropping depends on
their params compute them from params (a property), never assign them per instance."""

from __future__ import annotations

import pytest

from curate.plugins import get_plugin_manager
from curate.step import Step

CASES = [
    ("sample", {"fraction": 0.5}, "shard", True),
    ("sample", {"count": 3}, "table", True),
    ("sql", {"query": "SELECT * FROM input", "per_shard": True}, "shard", False),
    ("sql", {"query": "SELECT * FROM input"}, "table", False),
    ("clip_filter", {"threshold": 0.2}, "shard", True),
    ("clip_filter", {"top_fraction": 0.5}, "table", True),
    ("download", {}, "shard", False),
    ("download", {"drop_failed": True}, "shard", True),
    ("mix", {"strategy": "replace_prob", "options": {"p": 0.5}}, "shard", False),
    ("mix", {"strategy": "ratio", "options": {"fraction": 0.5}}, "table", False),
]


@pytest.mark.parametrize(("name", "params", "scope", "drops"), CASES)
def test_scope_follows_params_without_instance_state(name, params, scope, drops):
    cls = get_plugin_manager().steps.get(name)
    if cls is None:
        pytest.skip(f"{name} is not installed")
    step = cls(cls.Params.model_validate(params))
    assert (step.scope, bool(step.drops_rows)) == (scope, drops)
    assert "scope" not in vars(step) and "drops_rows" not in vars(step)


def test_no_installed_step_assigns_its_contract_per_instance():
    pm = get_plugin_manager()
    for name in pm.steps.names():
        cls = pm.steps.get(name)
        assert cls is not None and issubclass(cls, Step)
        try:
            step = cls()
        except Exception:  # noqa: BLE001 - steps with required params: covered by CASES above
            continue
        assert "scope" not in vars(step) and "drops_rows" not in vars(step), name
        assert step.scope in ("shard", "table"), name
