"""The ray executor as a plugin: registered, validated and planned without a cluster, and without
importing ray (these tests run whether or not ray is installed)."""

from __future__ import annotations

import json
import subprocess
import sys

import curate_ray
import pytest
import yaml
from curate_ray.executor import RayExecutor, RayParams

import curate.validation
from curate.errors import SpecError
from curate.plan import make_plan
from curate.spec import load_spec_text
from tests.conftest import cli_env, sample_table


@pytest.fixture
def ray_pm(pm, register_plugin):
    register_plugin(curate_ray, "ray", version=curate_ray.__version__)
    return pm


def plan(spec: dict, workdir, pm):
    data = workdir / "data.parquet"
    if not data.exists():  # written once: the source's fingerprint covers the file's mtime
        sample_table(20).write_parquet(data)
    text = yaml.safe_dump(spec)
    path = workdir / "spec.yaml"
    path.write_text(text)
    return make_plan(load_spec_text(text, path), pm, workdir / "run")


def spec_with(executor: dict) -> dict:
    return {
        "source": {"path": "data.parquet"},
        "steps": [{"step": "normalize_text"}, {"step": "exact_dedup", "params": {"columns": ["alt_text"]}}],
        "run": {"executor": executor},
    }


def test_importing_curate_and_its_plugins_never_imports_ray():
    code = (
        "import sys\n"
        "from curate.plugins import get_plugin_manager\n"
        "from curate.cli import main\n"
        "assert 'ray' in get_plugin_manager().executors.names()\n"
        "main(['--help'])\n"
        "main(['plugins'])\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "needs curate[ray]" in done.stdout


def test_executor_params_never_change_a_fingerprint():
    params = RayParams(address="auto", num_gpus_per_actor=0.5, actors=4, max_retries=1)
    assert params.fingerprint_dict() == {}


def test_switching_to_ray_keeps_every_step_fingerprint(ray_pm, workdir, monkeypatch):
    real = curate.validation._find_spec
    monkeypatch.setattr(curate.validation, "_find_spec", lambda name: True if name == "ray" else real(name))
    local = plan(spec_with({"name": "local"}), workdir, ray_pm)
    on_ray = plan(spec_with({"name": "ray", "params": {"actors": 2, "max_retries": 5}}), workdir, ray_pm)
    assert isinstance(on_ray.resolved.executor, RayExecutor)
    assert [p.fingerprint for p in on_ray.steps] == [p.fingerprint for p in local.steps]


def test_num_cpus_with_an_address_is_a_spec_error(ray_pm, workdir):
    spec = spec_with({"name": "ray", "params": {"address": "auto", "num_cpus": 8}})
    with pytest.raises(SpecError) as caught:
        plan(spec, workdir, ray_pm)
    assert "run.executor.params" in str(caught.value)
    assert "'num_cpus' sizes the local cluster" in str(caught.value)


def test_unknown_param_is_a_spec_error_with_a_suggestion(ray_pm, workdir):
    with pytest.raises(SpecError, match="max_retry"):
        plan(spec_with({"name": "ray", "params": {"max_retry": 2}}), workdir, ray_pm)


def test_without_ray_installed_the_plan_says_how_to_install_it(ray_pm, workdir, monkeypatch):
    real = curate.validation._find_spec
    monkeypatch.setattr(curate.validation, "_find_spec", lambda name: None if name == "ray" else real(name))
    with pytest.raises(SpecError, match=r"pip install 'curate\[ray\]'"):
        plan(spec_with({"name": "ray"}), workdir, ray_pm)


@pytest.mark.parametrize("address", ["203.0.113.5:6379", "ray://203.0.113.5:10001"])
def test_an_untrusted_spec_may_not_name_a_cluster_to_send_its_run_to(ray_pm, workdir, address):
    """Its data would go there, and ``ray.get`` unpickles what comes back: refused at validation."""
    spec = spec_with({"name": "ray", "params": {"address": address}})
    plan(spec, workdir, ray_pm)  # the user's own spec may
    spec["run"]["untrusted"] = True
    with pytest.raises(SpecError) as caught:
        plan(spec, workdir, ray_pm)
    text = str(caught.value)
    assert "run.executor.params.address" in text and address in text and "untrusted" in text
    assert "address: auto" in text  # how to use a cluster of one's own


@pytest.mark.parametrize("params", [{}, {"address": "auto"}])
def test_an_untrusted_spec_may_run_on_a_local_cluster_or_the_users_own(ray_pm, workdir, params, monkeypatch):
    monkeypatch.chdir(workdir)  # an untrusted spec reads its source only inside the working directory
    spec = spec_with({"name": "ray", "params": params})
    spec["run"]["untrusted"] = True
    assert isinstance(plan(spec, workdir, ray_pm).resolved.executor, RayExecutor)


def test_validate_untrusted_refuses_a_cluster_address_with_its_line(workdir, curate_cli):
    sample_table(5).write_parquet(workdir / "data.parquet")
    (workdir / "spec.yaml").write_text(yaml.safe_dump(spec_with({"name": "ray", "params": {"address": "10.0.0.9:6379"}})))
    result = curate_cli("validate", "--untrusted", str(workdir / "spec.yaml"))
    assert result.code == 2, result
    assert "spec.yaml:" in result.stderr and "run.executor.params.address: '10.0.0.9:6379'" in result.stderr


@pytest.mark.parametrize(("address", "problem"), [
    ("", "is empty"),
    ("127.0.0.1:6399 ", "has spaces around it (remove them)"),
    ("  auto", "has spaces around it (remove them)"),
    ("127.0.0.1:0", "has port 0, which is not from 1 to 65535"),
    ("127.0.0.1:99999", "has port 99999, which is not from 1 to 65535"),
    ("127.0.0.1", "is not an address curate can check before Ray waits on it"),
    ("localhost:6399/", "is not an address curate can check before Ray waits on it"),
    ("anyscale://cluster", "is not an address curate can check before Ray waits on it"),
])
def test_an_address_curate_cannot_check_first_is_a_spec_error(ray_pm, workdir, address, problem):
    """Ray waits ~821 s on an address that never answers; curate asks it first, within its deadline,
    and an address it cannot ask (a port out of range, spaces, another scheme) would skip that."""
    with pytest.raises(SpecError) as caught:
        plan(spec_with({"name": "ray", "params": {"address": address}}), workdir, ray_pm)
    text = str(caught.value)
    assert f"run.executor.params.address: {address!r} {problem}; the address is one of: auto, local, " \
        "HOST:PORT" in text
    assert "ray://HOST:PORT" in text and "from 1 to 65535" in text


@pytest.mark.parametrize("address", ["auto", "local", "127.0.0.1:1", "head.example:65535", "[::1]:6379",
                                     "ray://head.example:10001"])
def test_every_address_curate_can_check_first_plans(ray_pm, workdir, address):
    assert isinstance(plan(spec_with({"name": "ray", "params": {"address": address}}), workdir,
                           ray_pm).resolved.executor, RayExecutor)


def test_validate_refuses_an_address_with_a_port_out_of_range_with_its_line(workdir, curate_cli):
    sample_table(5).write_parquet(workdir / "data.parquet")
    spec = spec_with({"name": "ray", "params": {"address": "127.0.0.1:99999"}})
    (workdir / "spec.yaml").write_text(yaml.safe_dump(spec))
    result = curate_cli("validate", str(workdir / "spec.yaml"))
    assert result.code == 2, result
    assert "spec.yaml:" in result.stderr
    assert "run.executor.params.address: '127.0.0.1:99999' has port 99999" in result.stderr
    assert "Traceback" not in result.stderr


def test_address_local_is_the_same_as_no_address(ray_pm, workdir, monkeypatch):
    """The README's promise: num_cpus is accepted and an untrusted spec may run on it (both were
    refused, as if 'local' named a cluster to join); the session sees no address (test_connect)."""
    assert RayParams(address="local", num_cpus=2) == RayParams(num_cpus=2)
    monkeypatch.chdir(workdir)
    spec = spec_with({"name": "ray", "params": {"address": "local", "num_cpus": 2}})
    spec["run"]["untrusted"] = True
    executor = plan(spec, workdir, ray_pm).resolved.executor
    assert executor.params.address is None and executor.params.num_cpus == 2
    assert executor.untrusted_problems() == []


@pytest.mark.parametrize(("executor", "environment", "said"), [
    ({"name": "local"}, {}, "executor: local"),
    ({"name": "ray", "params": {"num_cpus": 2}}, {},
     "executor: ray, a local Ray cluster of this run on loopback (2 CPUs)"),
    ({"name": "ray", "params": {"address": "10.0.0.9:6379"}}, {},
     "executor: ray, the Ray cluster at 10.0.0.9:6379"),
    ({"name": "ray", "params": {"address": "auto"}}, {"RAY_ADDRESS": "10.0.0.7:6379"},
     "executor: ray, the Ray cluster at auto: 10.0.0.7:6379 (RAY_ADDRESS)"),
    ({"name": "ray", "params": {"address": "auto"}}, {"RAY_ADDRESS": ""},
     "executor: ray, the Ray cluster at auto: the one started on this machine ('ray start')"),
])
def test_plan_says_which_executor_and_cluster_the_run_will_use(workdir, curate_cli, executor, environment,
                                                               said):
    """In one line, without asking the cluster: a spec at auto goes where RAY_ADDRESS says."""
    sample_table(5).write_parquet(workdir / "data.parquet")
    (workdir / "spec.yaml").write_text(yaml.safe_dump(spec_with(executor)))
    result = curate_cli("plan", str(workdir / "spec.yaml"), **environment)
    assert result.code == 0, result
    assert [line for line in result.stdout.splitlines() if line.startswith("executor:")] == [said]
    as_json = curate_cli("plan", "--json", str(workdir / "spec.yaml"), **environment)
    assert json.loads(as_json.stdout)["executor"] == said.removeprefix("executor: ")
