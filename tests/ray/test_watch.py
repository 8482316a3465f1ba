"""The verdict on a lost cluster names every server of it that is silent: which one crosses the
deadline first is chance (a CI run saw the raylet named where the GCS was expected), so the
others are asked once more and named when they do not answer either. Servers here are sockets on
loopback; no Ray cluster is started."""

from __future__ import annotations

import re

import pytest

from tests.ray.connecting import answers_calls, refused_port

pytest.importorskip("ray")


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    """Each question's own limit, short: a refused connection is tried again until it passes."""
    monkeypatch.setattr("curate_ray.watch.ASK_SECONDS", 0.5)


def test_a_cluster_whose_servers_are_all_gone_is_named_whole():
    from curate_ray.watch import ClusterWatch

    gcs, raylet = refused_port(), refused_port()
    watch = ClusterWatch([("its GCS at A", "127.0.0.1", gcs), ("the raylet at B", "127.0.0.1", raylet)], 0)
    said = watch.problem()
    assert said is not None and re.match(r"its GCS at A has not answered for \d+ s \(", said)
    assert "; the raylet at B does not answer either (" in said
    assert watch.lost() == said and watch.problem() == said  # lost for good


def test_a_server_that_still_answers_is_not_named(server):
    from curate_ray.watch import ClusterWatch

    answering = server(answers_calls, host="127.0.0.1")
    watch = ClusterWatch([("the raylet at B", "127.0.0.1", refused_port()),
                          ("its GCS at A", "127.0.0.1", answering)], 0)
    said = watch.problem()
    assert said is not None and re.match(r"the raylet at B has not answered for \d+ s \(", said)
    assert "GCS" not in said
