"""The gateway's routing table: which pods take requests, in what turn, and what an MLModel asks of it."""

from __future__ import annotations

from typing import Any

from modelfleet.gateway.routing import DEFAULT_COLD_START_TIMEOUT, RoutingTable, model_entry, ready_endpoint


def pod(
    name: str, model: str = "iris", version: str = "1", ip: str | None = "10.0.0.1", ready: bool = True, **meta: Any
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"modelfleet.io/model": model, "modelfleet.io/version": version}, **meta},
        "status": {
            **({"podIP": ip} if ip else {}),
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_only_ready_pods_with_an_address_that_are_not_going_take_requests() -> None:
    e = ready_endpoint(pod("a"))
    assert e is not None and (e.pod, e.model, e.version, e.address) == ("a", "iris", "1", "10.0.0.1:8080")
    assert ready_endpoint(pod("b", ready=False)) is None
    assert ready_endpoint(pod("c", ip=None)) is None
    assert ready_endpoint(pod("d", deletionTimestamp="2026-12-04T00:00:00Z")) is None
    assert ready_endpoint({"metadata": {"name": "e", "labels": {}}, "status": {"podIP": "10.0.0.2"}}) is None
    v6 = ready_endpoint(pod("f", ip="fd00::1"))
    assert v6 is not None and v6.address == "[fd00::1]:8080"


def test_an_mlmodels_routing_settings_and_their_defaults() -> None:
    m = model_entry({"metadata": {"name": "iris"}, "spec": {"serving": {"minReplicas": 0, "coldStartTimeout": "2m"}}})
    assert (m.name, m.cold_start_timeout, m.scale_to_zero) == ("iris", 120.0, True)
    plain = model_entry({"metadata": {"name": "x"}, "spec": {}})
    assert (plain.cold_start_timeout, plain.scale_to_zero) == (DEFAULT_COLD_START_TIMEOUT, False)
    bad = model_entry({"metadata": {"name": "y"}, "spec": {"serving": {"coldStartTimeout": "soon"}}})
    assert bad.cold_start_timeout == DEFAULT_COLD_START_TIMEOUT  # never fails on what it cannot read


def test_requests_take_the_ready_pods_in_turn_and_an_ejected_pod_waits_its_time() -> None:
    table = RoutingTable()
    assert table.set_pod("a", ready_endpoint(pod("a", ip="10.0.0.1"))) is True
    assert table.set_pod("b", ready_endpoint(pod("b", ip="10.0.0.2"))) is True
    assert table.set_pod("a", ready_endpoint(pod("a", ip="10.0.0.1"))) is False  # not new
    turns = [table.pick("iris", 0.0) for _ in range(4)]
    assert [e.pod for e in turns if e] == ["a", "b", "a", "b"]
    table.eject("a", 5.0, now=10.0)
    assert {e.pod for e in (table.pick("iris", 12.0) for _ in range(3)) if e} == {"b"}
    assert {e.pod for e in (table.pick("iris", 15.0) for _ in range(2)) if e} == {"a", "b"}  # its time is up
    table.eject("b", 5.0, now=20.0)
    table.set_pod("b", ready_endpoint(pod("b", ip="10.0.0.2")))  # the watch's word ends an ejection
    assert table.endpoints("iris", 21.0)[1].pod == "b"
    assert table.pick("other", 0.0) is None


def test_a_relist_replaces_what_events_built_and_known_names_both_sources() -> None:
    table = RoutingTable()
    table.set_pod("gone", ready_endpoint(pod("gone", model="old")))
    table.eject("gone", 60.0, now=0.0)
    table.replace_pods([pod("a", model="iris"), pod("b", model="wine", ready=False)])
    table.replace_models([{"metadata": {"name": "sleepy"}, "spec": {"serving": {"minReplicas": 0}}}])
    assert list(table.pods) == ["a"] and not table.ejected
    assert table.known() == ["iris", "sleepy"]
    table.set_pod("a", None)
    table.remove_model("sleepy")
    assert table.known() == []


def test_a_canary_gets_its_weight_of_the_requests_spread_evenly_and_no_more() -> None:
    table = RoutingTable()
    entry = model_entry(
        {"metadata": {"name": "iris"}, "spec": {}, "status": {"canary": {"version": 2, "weight": 10, "step": 0}}}
    )
    assert (entry.canary_version, entry.canary_weight) == ("2", 10)
    table.set_model(entry)
    for name, version in (("v1-a", "1"), ("v1-b", "1"), ("v2-a", "2")):
        table.set_pod(name, ready_endpoint(pod(name, version=version)))
    picks = [e.version for e in (table.pick("iris", 0.0) for _ in range(100)) if e]
    assert picks.count("2") == 10 and "2" not in picks[:9] and picks[9] == "2"  # every tenth, not ten in a row
    entry.canary_weight = 50
    picks = [e.version for e in (table.pick("iris", 0.0) for _ in range(100)) if e]
    assert picks.count("2") == 50
    entry.canary_weight = 100
    assert {e.version for e in (table.pick("iris", 0.0) for _ in range(20)) if e} == {"2"}
    entry.canary_weight = 0
    assert {e.version for e in (table.pick("iris", 0.0) for _ in range(20)) if e} == {"1"}
    table.set_pod("v1-a", None)
    table.set_pod("v1-b", None)  # the serving version's pods are gone: the canary takes the turns
    assert {e.version for e in (table.pick("iris", 0.0) for _ in range(5)) if e} == {"2"}
