"""The reconcile core's pure parts: the cache, the queue, which events queue which keys, the rate limiter, the
expectations and the pass boundary (status patched only when changed, Events posted once, errors classified)."""

from __future__ import annotations

import asyncio
import datetime
import json
import time
import zlib
from typing import Any

import kopf
import pytest
from kubernetes.client.exceptions import ApiException

from modelfleet.api.v1alpha1 import TrainingJob
from modelfleet.cache.queue import WorkQueue
from modelfleet.cache.store import Store, slim
from modelfleet.cache.view import CacheBehind, CachedCluster, Expectations
from modelfleet.clients.kube import describe, resource_of, retrying
from modelfleet.clients.ratelimit import ClientStopped, RequestGate, TokenBucket
from modelfleet.config import OperatorConfig
from modelfleet.controller.boundary import UNREACHABLE_CAP, Kind, Pass, PassDeps
from modelfleet.controller.controller import needs_pass
from modelfleet.controller.routing import queued_by
from modelfleet.errors import InvalidSpec
from modelfleet.reconcilers.outcome import Event, Outcome
from modelfleet.vocabulary import Key

T0 = datetime.datetime(2026, 12, 2, 12, 0, tzinfo=datetime.UTC)


def obj(name: str, rv: int = 1, namespace: str = "ns", **extra: Any) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace, "resourceVersion": str(rv), "uid": f"uid-{name}"}
    meta.update(extra.pop("metadata", {}))
    return {"metadata": meta, **extra}


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- the cache
def test_the_cache_keeps_only_what_decisions_read_and_never_goes_back_to_an_older_version() -> None:
    pod = obj(
        "p",
        metadata={"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "x" * 10_000, "keep": "1"}},
        spec={"nodeName": "n1", "containers": [{"name": "big", "env": [{"name": "A", "value": "1"}] * 100}]},
        status={"phase": "Running", "hostIP": "10.0.0.1"},
    )
    kept = slim("Pod", pod)
    assert kept["spec"] == {"nodeName": "n1"} and kept["status"] == {"phase": "Running"}
    assert kept["metadata"]["annotations"] == {"keep": "1"}
    store = Store()
    store.upsert("Pod", obj("p", 5, status={"phase": "Running"}))
    change = store.upsert("Pod", obj("p", 4, status={"phase": "Pending"}))  # a watch lagging behind a write
    assert change.old is change.new
    assert store.get("Pod", "ns", "p")["status"]["phase"] == "Running"  # type: ignore[index]


def test_the_cache_selects_through_indexes_and_hands_out_copies() -> None:
    store = Store()
    for i in range(3):
        store.upsert(
            "TrainingJob",
            obj(f"m{i}-v1", metadata={"labels": {"modelfleet.io/model": f"m{i}"}}, status={"fingerprint": "f"}),
        )
    found = store.select("TrainingJob", "ns", {"label:modelfleet.io/model": "m1"})
    assert [o["metadata"]["name"] for o in found] == ["m1-v1"]
    assert len(store.select("TrainingJob", "ns", {"status.fingerprint": "f"})) == 3
    found[0]["status"]["fingerprint"] = "changed by a careless pass"
    assert store.select("TrainingJob", "ns", {"label:modelfleet.io/model": "m1"})[0]["status"]["fingerprint"] == "f"
    store.upsert("TrainingJob", obj("m1-v1", 2, metadata={"labels": {"modelfleet.io/model": "other"}}))
    assert store.select("TrainingJob", "ns", {"label:modelfleet.io/model": "m1"}) == []
    store.delete("TrainingJob", "ns", "m0-v1")
    assert store.count("TrainingJob") == 2 and store.select("TrainingJob", "other-ns") == []


def test_the_cache_indexes_agree_with_a_search_of_every_object_through_random_changes() -> None:
    """Index entries hold one name as itself and more as a set; through any sequence of upserts, relabels and deletes
    a lookup answers what filtering every object would, and no empty entry is left behind."""
    import random

    rng, store, truth = random.Random(7), Store(), {}
    for step in range(3000):
        name, model = f"p{rng.randrange(40)}", f"m{rng.randrange(6)}"
        if rng.random() < 0.3:
            store.delete("Pod", "ns", name)
            truth.pop(name, None)
        else:
            store.upsert("Pod", obj(name, step + 1, metadata={"labels": {"modelfleet.io/model": model}}))
            truth[name] = model
        if step % 100 == 0:
            for m in (f"m{i}" for i in range(6)):
                want = sorted(n for n, got in truth.items() if got == m)
                assert [
                    o["metadata"]["name"] for o in store.select("Pod", "ns", {"label:modelfleet.io/model": m})
                ] == want
    assert all(names for names in store._index.values()), "no empty entry is kept"
    assert sum(1 for names in store._index.values() if isinstance(names, str)) == sum(
        1 for m in set(truth.values()) if list(truth.values()).count(m) == 1
    )


def test_the_cache_source_search_narrows_by_the_runs_that_trained_not_by_every_hit() -> None:
    store = Store()
    store.upsert("TrainingJob", obj("trained", status={"fingerprint": "f"}))
    for i in range(50):  # a fleet's cache hits: the same fingerprint, each pointing at the run it reused
        store.upsert("TrainingJob", obj(f"hit-{i}", status={"fingerprint": "f", "cachedFrom": "trained"}))
    store.upsert("TrainingJob", obj("other", status={"fingerprint": "g"}))
    search = {"status.fingerprint": "f", "status.cachedFrom": ""}
    assert [o["metadata"]["name"] for o in store.select("TrainingJob", "ns", search)] == ["trained"]
    # The "absent" index holds exactly the runs without the field: 2 of 52 (what the search reads).
    assert store.indexed(("TrainingJob", "ns", "status.cachedFrom", "")) == {"trained", "other"}
    store.upsert("TrainingJob", obj("other", 2, status={"fingerprint": "g", "cachedFrom": "x"}))  # it leaves the index
    assert store.indexed(("TrainingJob", "ns", "status.cachedFrom", "")) == {"trained"}
    assert store._index[("TrainingJob", "ns", "status.cachedFrom", "")] == "trained", "one name is kept as itself"
    assert len(store.select("TrainingJob", "ns", {"status.fingerprint": "f"})) == 51
    # An index without absent entries is never used for "": the field-by-field match answers.
    assert [o["metadata"]["name"] for o in store.select("TrainingJob", "ns", {"status.fingerprint": ""})] == []


def test_the_cache_answers_facts_and_versions_without_unpacking_and_filters_the_rest_on_the_object() -> None:
    store = Store()
    store.upsert("MLModel", obj("m", 3, spec={"serving": {"resources": {"gpu": 1}}}, status={"phase": "Serving"}))
    store.upsert("Deployment", obj("m", 4, metadata={"labels": {"modelfleet.io/model": "m"}}, spec={"replicas": 1}))
    serving = {"modelfleet.io/model": "m", "app.kubernetes.io/component": "serving"}
    store.upsert("Pod", obj("m-a", 5, metadata={"labels": serving}, status={"phase": "Running"}))
    store.upsert("Pod", obj("m-b", 6, metadata={"labels": {**serving, "app.kubernetes.io/component": "x"}}))
    assert store.fact("MLModel", "ns", "m", "spec.serving.resources.gpu") == 1
    assert store.fact("Deployment", "ns", "m", "label:modelfleet.io/model") == "m"
    assert store.fact("MLModel", "ns", "gone", "spec.serving.resources.gpu") is None
    match = {f"label:{k}": v for k, v in serving.items()}
    assert store.versions("Pod", "ns", match) == (("m-a", "5"),)
    assert store.version("MLModel", "ns", "m") == "3" and store.version("MLModel", "ns", "gone") is None
    # A path that is neither indexed nor a fact is compared on the unpacked object.
    assert [o["metadata"]["name"] for o in store.select("Pod", "ns", {"status.phase": "Running"})] == ["m-a"]
    assert store.keys_of("Pod", "ns", {"status.phase": ""}) == [Key("Pod", "ns", "m-b")]
    change = store.delete("MLModel", "ns", "m")
    assert change.old is not None and change.old["status"] == {"phase": "Serving"} and change.new is None


def test_the_cache_packs_each_kind_against_an_earlier_object_of_it_and_replaces_that_only_as_objects_grow() -> None:
    from modelfleet.cache.store import DICTIONARY_GROWTH

    store = Store()

    def model(name: str, rv: int, conditions: int) -> dict[str, Any]:
        status = {
            "phase": "Serving",
            "conditions": [
                {"type": f"Ready{i}", "status": "True", "reason": "Serving", "message": f"version {i} answers"}
                for i in range(conditions)
            ],
        }
        return obj(name, rv, spec={"owner": {"team": "fraud"}, "dataset": {"uri": "pvc://data/x.csv"}}, status=status)

    store.upsert("MLModel", model("bare", 1, 0))  # a kind's first object: its dictionary, however small
    first = store._dictionaries["MLModel"]
    store.upsert("MLModel", model("a", 2, 3))  # much larger: the dictionary follows the kind's objects as they grow
    second = store._dictionaries["MLModel"]
    assert first != second and len(second) >= len(first) * DICTIONARY_GROWTH
    store.upsert("MLModel", model("b", 3, 3))  # about as large: kept, so a kind has a handful of dictionaries
    assert store._dictionaries["MLModel"] is second
    bare, a, b = (store._objects[("MLModel", "ns")][n] for n in ("bare", "a", "b"))
    assert bare.dictionary == first and a.dictionary is b.dictionary is second
    plain = len(zlib.compress(json.dumps(slim("MLModel", model("b", 3, 3)), separators=(",", ":")).encode(), 1))
    assert len(b.packed) * 3 < plain, "an object like the dictionary packs to a fraction of its size alone"
    # Every object unpacks with the dictionary it was packed with, after the kind's has moved on.
    assert store.get("MLModel", "ns", "bare") == slim("MLModel", model("bare", 1, 0))
    assert store.get("MLModel", "ns", "b") == slim("MLModel", model("b", 3, 3))
    assert store.get("Pod", "ns", "none") is None and "Pod" not in store._dictionaries


# -- the queue
def test_the_queue_runs_a_burst_once_and_a_key_added_during_its_pass_again_after_it() -> None:
    async def scenario() -> list[str]:
        clock = FakeClock()
        q: WorkQueue[str] = WorkQueue(clock=clock)
        for _ in range(5):
            q.add("a")
        q.add("b", after=10)
        assert len(q) == 2
        first = await q.get()
        q.add("a")  # an event while "a" is being reconciled
        assert len(q) == 1  # not twice in the queue...
        q.done(first)
        assert len(q) == 2  # ...but due again once its pass ended
        second = await q.get()
        q.done(second)
        clock.now += 11
        third = await q.get()
        return [first, second, third]

    assert asyncio.run(scenario()) == ["a", "a", "b"]


def test_a_due_key_wakes_one_waiting_worker_and_every_key_is_taken_once_when_due() -> None:
    """Waiting workers are woken one per due key (a shared event woke all eight for every resync of an idle fleet),
    and with any mix of due times, workers and re-adds during passes, every key is taken, once at a time."""
    import random

    async def one_wakes() -> tuple[int, bool]:
        q: WorkQueue[str] = WorkQueue()
        workers = [asyncio.create_task(q.get()) for _ in range(8)]
        await asyncio.sleep(0.01)
        waiting = list(q._waiters)
        q.add("a")
        await asyncio.sleep(0.01)
        done = [w for w in workers if w.done()]
        # The other seven still wait on the futures they began with: they were not woken to look and wait again.
        untouched = len(q._waiters) == 7 and all(any(w is v for v in waiting) for w in q._waiters)
        q.close()
        await asyncio.gather(*workers, return_exceptions=True)
        return len(done), untouched

    assert asyncio.run(one_wakes()) == (1, True)

    async def churn() -> dict[str, int]:
        rng, q = random.Random(3), WorkQueue[str]()
        taken: dict[str, int] = {}
        busy: set[str] = set()

        async def worker() -> None:
            while True:
                key = await q.get()
                assert key not in busy, "a key is never held by two workers"
                busy.add(key)
                taken[key] = taken.get(key, 0) + 1
                await asyncio.sleep(rng.choice((0, 0, 0.001)))
                if rng.random() < 0.1:
                    q.add(key, rng.choice((0, 0.002)))  # an event during its pass: once more, after it
                busy.discard(key)
                q.done(key)

        workers = [asyncio.create_task(worker()) for _ in range(4)]
        for i in range(300):
            q.add(f"k{i % 120}", rng.choice((0, 0, 0.001, 0.005, 0.02)))
            if i % 25 == 0:
                await asyncio.sleep(0.002)
        for _ in range(500):  # until the queue is drained (a liveness check, not a timing one)
            await asyncio.sleep(0.01)
            if not len(q) and not q.processing and not q._again:
                break
        q.close()
        await asyncio.gather(*workers, return_exceptions=True)
        return taken

    taken = asyncio.run(churn())
    assert set(taken) == {f"k{i}" for i in range(120)}


def test_the_queue_keeps_the_earliest_due_time_and_backs_off_failures() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(clock=clock, base_backoff=1.0, max_backoff=8.0)
    q.add("a", after=600)  # the resync
    q.add("a", after=0.1)  # an event: sooner wins
    q.add("a", after=300)  # later: ignored
    assert q._due["a"] == pytest.approx(100.1)
    assert [q.retry("k") for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert q.retry("throttled", at_least=30.0) == 30.0  # a Retry-After longer than the back-off
    q.forget("k")
    assert q.retry("k") == 1.0
    assert [q.retry("outage", cap=2.0) for _ in range(4)] == [1.0, 2.0, 2.0, 2.0]  # an unreachable API: capped


# -- routing
def _route(kind: str, body: dict[str, Any], **kwargs: Any) -> list[Key]:
    return queued_by(
        kind,
        body,
        added_or_deleted=kwargs.get("added", False),
        policies_of=lambda ns, model: [Key("DriftPolicy", ns, f"{model}-drift")],
        job_owner=lambda ns, job: Key("TrainingJob", ns, "a-name-longer-than-a-label") if job == "j" else None,
    )


def test_a_child_event_queues_the_owner_whose_decision_reads_it() -> None:
    owner = [{"kind": "MLModel", "name": "m", "controller": True, "uid": "u"}]
    assert _route("Deployment", obj("m", metadata={"ownerReferences": owner})) == [Key("MLModel", "ns", "m")]
    tj = obj("m-v1", metadata={"labels": {"modelfleet.io/model": "m"}})
    assert _route("TrainingJob", tj) == [Key("TrainingJob", "ns", "m-v1"), Key("MLModel", "ns", "m")]
    training_pod = obj("j-x", metadata={"labels": {"batch.kubernetes.io/job-name": "j"}})
    assert _route("Pod", training_pod) == [Key("TrainingJob", "ns", "a-name-longer-than-a-label")]
    serving_pod = obj(
        "m-1", metadata={"labels": {"modelfleet.io/model": "m", "app.kubernetes.io/component": "serving"}}
    )
    assert _route("Pod", serving_pod) == [Key("MLModel", "ns", "m")]
    policy = obj("p", spec={"modelRef": {"name": "m"}})
    assert _route("DriftPolicy", policy) == [Key("DriftPolicy", "ns", "p"), Key("MLModel", "ns", "m")]
    assert _route("MLModel", obj("m"), added=True) == [Key("MLModel", "ns", "m"), Key("DriftPolicy", "ns", "m-drift")]
    assert _route("MLModel", obj("m")) == [Key("MLModel", "ns", "m")]
    assert _route("Pod", obj("stranger")) == []
    # Kueue's Workload for one of our Jobs queues the TrainingJob that owns the Job; anyone else's queues nothing.
    by_job = [{"kind": "Job", "name": "j", "controller": True, "uid": "u"}]
    assert _route("Workload", obj("job-j-1", metadata={"ownerReferences": by_job})) == [
        Key("TrainingJob", "ns", "a-name-longer-than-a-label")
    ]
    other = [{"kind": "Job", "name": "someone-elses", "controller": True, "uid": "v"}]
    assert _route("Workload", obj("job-x-1", metadata={"ownerReferences": other})) == []


def test_finished_runs_invalid_specs_and_objects_being_deleted_get_no_pass() -> None:
    done = {"conditions": [{"type": "Succeeded", "status": "True"}], "observedGeneration": 1}
    assert not needs_pass(Key("TrainingJob", "ns", "t"), obj("t", metadata={"generation": 1}, status=done))
    invalid = {"conditions": [{"type": "Ready", "status": "False", "reason": "InvalidSpec"}], "observedGeneration": 2}
    assert not needs_pass(Key("MLModel", "ns", "m"), obj("m", metadata={"generation": 2}, status=invalid))
    assert needs_pass(Key("MLModel", "ns", "m"), obj("m", metadata={"generation": 3}, status=invalid))
    assert not needs_pass(Key("MLModel", "ns", "m"), obj("m", metadata={"deletionTimestamp": "2026-12-02T12:00:00Z"}))


# -- rate limiting and counting
def test_the_token_bucket_allows_a_burst_then_spaces_requests_to_qps() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, 3, clock=clock, sleep=lambda s: None)
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)
    clock.now += 10  # idle: the burst refills, no further
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0] and bucket.reserve() > 0


def test_requests_are_counted_by_resource() -> None:
    assert resource_of("https://h:6443/api/v1/namespaces/a/pods?labelSelector=x") == "pods"
    assert resource_of("https://h/apis/modelfleet.io/v1alpha1/namespaces/a/mlmodels/m/status") == "mlmodels/status"
    assert resource_of("https://h/apis/batch/v1/jobs") == "jobs"
    assert resource_of("https://h/api/v1/namespaces/a/events") == "events"


# -- expectations: a pass never acts on a cache behind its own write
def test_a_read_behind_the_operators_own_write_waits_for_the_watch() -> None:
    store, clock = Store(), FakeClock()
    expectations = Expectations(store, clock=clock)
    view = CachedCluster(store, None, expectations)  # type: ignore[arg-type]
    expectations.expect(Key("Job", "ns", "j"), "7")
    with pytest.raises(CacheBehind):
        view.get_job("ns", "j")
    store.upsert("Job", obj("j", 6))
    with pytest.raises(CacheBehind):
        view.get_job("ns", "j")
    store.upsert("Job", obj("j", 7))
    assert view.get_job("ns", "j") is not None and len(expectations) == 0
    expectations.expect(Key("TrainingJob", "ns", "m-v2"), "9", model="m")
    with pytest.raises(CacheBehind):
        view.list_custom("ns", "trainingjobs", "modelfleet.io/model=m")
    assert view.list_custom("ns", "trainingjobs", "modelfleet.io/model=other") == []  # other models never wait
    clock.now += 31  # a lost event never stops the object for good
    assert view.list_custom("ns", "trainingjobs", "modelfleet.io/model=m") == []
    assert expectations._by_model == {} and len(expectations) == 0  # nothing of it is left behind
    for i in range(3):
        expectations.expect(Key("TrainingJob", "ns", f"m{i}-v1"), "20", model=f"m{i}")
    store.upsert("TrainingJob", obj("m1-v1", 20, metadata={"labels": {"modelfleet.io/model": "m1"}}))
    assert len(view.list_custom("ns", "trainingjobs", "modelfleet.io/model=m1")) == 1
    assert set(expectations._by_model) == {("TrainingJob", "ns", "m0"), ("TrainingJob", "ns", "m2")}


# -- the pass boundary
class RecordingKube:
    def __init__(self, refuse: int | None = None) -> None:
        self.patches: list[dict[str, Any]] = []
        self.events: list[str] = []
        self.refuse = refuse

    def patch_status(self, plural: str, ns: str, name: str, status: dict[str, Any], rv: str | None) -> dict:
        if self.refuse:
            raise ApiException(status=self.refuse, reason="Conflict")
        self.patches.append(status)
        return {"metadata": {"name": name, "namespace": ns, "resourceVersion": str(int(rv or 0) + 1)}}

    def post_event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append(reason)

    def apply(self, obj: dict[str, Any]) -> str:
        return "1"


def _tj_body(status: dict[str, Any] | None = None, rv: int = 1) -> dict[str, Any]:
    return obj(
        "t",
        rv,
        metadata={"generation": 1},
        spec={
            "framework": "sklearn",
            "task": "classification",
            "dataset": {"uri": "file:///d.csv", "target": "y"},
            "training": {"estimator": "sklearn.linear_model.LogisticRegression"},
        },
        status=status or {},
    )


def _boundary(kube: RecordingKube, reconcile: Any) -> Pass:
    store = Store()
    kind = Kind("TrainingJob", "trainingjobs", TrainingJob, reconcile)
    view = CachedCluster(store, kube, Expectations(store))  # type: ignore[arg-type]
    deps = PassDeps(view, OperatorConfig(), lambda url: None)  # type: ignore[arg-type]
    return Pass({"TrainingJob": kind}, deps, kube, Expectations(store), lambda: T0)  # type: ignore[arg-type]


def test_a_pass_that_changes_nothing_writes_nothing() -> None:
    kube = RecordingKube()

    def unchanged(o: TrainingJob, generation: int | None, deps: Any, now: Any) -> Outcome:
        return Outcome(o.status)

    body = _tj_body({"phase": "Pending", "conditions": []})
    result = _boundary(kube, unchanged).run(Key("TrainingJob", "ns", "t"), body)
    assert result.result == "success" and kube.patches == [] and kube.events == []


def test_a_pass_whose_inputs_are_as_the_last_one_found_them_is_not_run_again() -> None:
    """The resync of an idle fleet: a pass that wrote nothing is skipped while the object and everything it read
    (objects, lists, values beside the cache) keep their versions; any change runs it again."""
    kube, runs, beside = RecordingKube(), [], {"activity": 1}

    def reads(o: TrainingJob, generation: int | None, deps: Any, now: Any) -> Outcome:
        runs.append(1)
        deps.kube.get_job("ns", "j")
        deps.kube.list_pods("ns", "batch.kubernetes.io/job-name=j")
        deps.kube.read_beside(lambda: beside["activity"])
        return Outcome(o.status)

    boundary = _boundary(kube, reads)
    quiet = {"phase": "Pending", "conditions": []}  # what the pass would write: nothing changes
    store, key, body = boundary.deps.kube.store, Key("TrainingJob", "ns", "t"), _tj_body(quiet)
    store.upsert("Job", obj("j", 5))
    pod = {"labels": {"batch.kubernetes.io/job-name": "j"}}

    def again() -> str:
        return boundary.run(key, body).result

    assert (again(), again(), len(runs)) == ("success", "unchanged", 1)
    store.upsert("Job", obj("j", 6))  # an object it read changed
    assert (again(), again(), len(runs)) == ("success", "unchanged", 2)
    store.upsert("Pod", obj("p", 7, metadata=pod))  # a list it read has a new member
    assert (again(), again(), len(runs)) == ("success", "unchanged", 3)
    store.upsert("Pod", obj("other", 8, metadata={"labels": {"batch.kubernetes.io/job-name": "k"}}))
    assert (again(), len(runs)) == ("unchanged", 3)  # a pod of another Job is not its input
    beside["activity"] = 2
    assert (again(), again(), len(runs)) == ("success", "unchanged", 4)
    body = _tj_body(quiet, rv=2)  # the object itself
    assert (again(), again(), len(runs)) == ("success", "unchanged", 5)
    store.delete("Job", "ns", "j")
    assert (again(), len(runs)) == ("success", 6)
    boundary.memos.forget(key)  # the object was deleted
    assert (again(), len(runs)) == ("success", 7)


def test_a_quiet_key_is_skipped_by_the_worker_without_reading_its_object() -> None:
    """The idle resync: a key whose memo holds is counted unchanged and queued for its next resync on the event loop,
    without unpacking the object or handing it to a thread; a key awaiting this operator's own write, or whose input
    changed, gets its pass; a finished run's memo schedules no resync."""
    from modelfleet.config import OperatorConfig
    from modelfleet.controller.controller import Controller

    kube, runs = RecordingKube(), []

    def quiet(o: TrainingJob, generation: int | None, deps: Any, now: Any) -> Outcome:
        runs.append(o.metadata["name"])
        deps.kube.get_job("ns", "j")
        return Outcome(o.status)

    async def scenario() -> tuple[list[str], int, dict[Key, float]]:
        config = OperatorConfig(resync_seconds=600.0, debounce_seconds=0.0)
        kind = Kind("TrainingJob", "trainingjobs", TrainingJob, quiet)
        c = Controller(
            config=config, kube=kube, kinds={"TrainingJob": kind}, prometheus_for=lambda u: None, clock=lambda: T0
        )  # type: ignore[arg-type]
        unpacked: list[Key] = []
        get = c.store.get

        def counting_get(*where: str) -> Any:
            unpacked.append(Key(*where))
            return get(*where)

        c.store.get = counting_get  # type: ignore[method-assign]
        c.synced.set()
        worker = asyncio.create_task(c._worker())

        async def settle() -> None:
            for _ in range(200):
                await asyncio.sleep(0.01)
                if not c.queue.processing and all(due > time.monotonic() + 1 for due in c.queue._due.values()):
                    return

        t = _tj_body({"phase": "Pending", "conditions": []})
        succeeded = [
            {"type": "Succeeded", "status": "True", "reason": "Completed", "message": "done"}
        ]  # finished, and its status not yet of this generation
        done = _tj_body({"phase": "Succeeded", "conditions": succeeded, "observedGeneration": 0})
        done["metadata"]["name"] = "finished"
        c.store.upsert("Job", obj("j", 5))
        for body in (t, done):
            c.observe("TrainingJob", "ADDED", body)
        await settle()
        first = len(unpacked)
        key = Key("TrainingJob", "ns", "t")
        c.queue.add(key)  # its resync comes due
        c.queue.add(Key("TrainingJob", "ns", "finished"))
        await settle()
        skipped = len(unpacked) - first
        c.expectations.expect(key, "99")  # a write of ours not seen yet: the pass runs (and waits for the cache)
        c.queue.add(key)
        await settle()
        c.expectations._pending.clear()
        c.store.upsert("Job", obj("j", 6))  # an input changed
        c.queue.add(key)
        await settle()
        worker.cancel()
        return runs, skipped, dict(c.queue._due)

    runs_, skipped, due = asyncio.run(scenario())
    assert runs_ == ["t", "finished", "t"], "the quiet resyncs and the awaited write ran no pass; the changed input did"
    assert skipped == 0, "the quiet keys were skipped without unpacking their objects"
    assert set(due) == {Key("TrainingJob", "ns", "t")}, "a resync is queued, but none for the finished run"
    assert all(due_at - time.monotonic() > 500 for due_at in due.values())


def test_a_records_status_does_not_run_its_models_pass_again_but_a_new_record_does() -> None:
    """A model's pass reads only what a record was created with (its version, its model's uid): the record's own pass
    changing its status is not an input; another record of the model, or one removed, is."""
    kube, runs, seen = RecordingKube(), [], []

    def reads_records(o: TrainingJob, generation: int | None, deps: Any, now: Any) -> Outcome:
        runs.append(1)
        seen.append(deps.kube.recorded_versions("ns", "m", "uid-m"))
        return Outcome(o.status)

    boundary = _boundary(kube, reads_records)
    store, key, body = (
        boundary.deps.kube.store,
        Key("TrainingJob", "ns", "t"),
        _tj_body({"phase": "Pending", "conditions": []}),
    )

    def record(version: int, rv: int, uid: str = "uid-m", **status: Any) -> None:
        labels = {"modelfleet.io/model": "m", "modelfleet.io/model-uid": uid}
        made = obj(f"{uid}-v{version}", rv, metadata={"labels": labels}, spec={"version": version}, status=status)
        store.upsert("ModelVersion", made)

    def again() -> str:
        return boundary.run(key, body).result

    record(1, 5)
    record(1, 6, uid="uid-of-an-older-m")  # a record of a deleted model of the same name is not this model's
    assert (again(), again(), seen[-1]) == ("success", "unchanged", {1})
    record(1, 7, state="Serving")  # the record's own pass wrote its status
    assert (again(), len(runs)) == ("unchanged", 1)
    record(2, 8)
    assert (again(), again(), seen[-1], len(runs)) == ("success", "unchanged", {1, 2}, 2)
    store.delete("ModelVersion", "ns", "uid-m-v1")
    assert (again(), seen[-1], len(runs)) == ("success", {2}, 3)


def test_a_pass_that_wrote_or_waits_on_time_always_runs_again() -> None:
    kube, runs = RecordingKube(), []
    key, quiet = Key("TrainingJob", "ns", "t"), {"phase": "Pending", "conditions": []}

    def applies(o: TrainingJob, generation: int | None, deps: Any, now: Any) -> Outcome:
        runs.append(1)
        deps.kube.apply({"kind": "Service", "metadata": {"name": "s", "namespace": "ns"}})
        return Outcome(o.status)

    def due_later(o: TrainingJob, generation: int | None, deps: Any, now: Any) -> Outcome:
        runs.append(1)
        return Outcome(o.status, requeue_after=30.0)

    def says(o: TrainingJob, generation: int | None, deps: Any, now: Any) -> Outcome:
        runs.append(1)
        return Outcome(o.status, [Event("Normal", "Noted", "y")])

    def asks_prometheus(o: TrainingJob, generation: int | None, deps: Any, now: Any) -> Outcome:
        runs.append(1)
        deps.prometheus_for("http://prometheus")
        return Outcome(o.status)

    for reconcile in (applies, due_later, says):
        boundary = _boundary(kube, reconcile)
        assert [boundary.run(key, _tj_body(quiet)).result for _ in range(2)] == ["success"] * 2
    boundary = _boundary(kube, asks_prometheus)
    boundary.deps.prometheus_for = boundary.deps.kube.reading_outside(lambda url: None)
    assert [boundary.run(key, _tj_body(quiet)).result for _ in range(2)] == ["success"] * 2
    assert len(runs) == 8


def test_a_refused_status_patch_posts_only_the_events_of_writes_already_made() -> None:
    kube = RecordingKube(refuse=409)

    def decides(o: TrainingJob, generation: int | None, deps: Any, now: Any) -> Outcome:
        o.status.phase = "Running"
        return Outcome(o.status, [Event("Normal", "TrainingStarted", "x", action=True), Event("Normal", "Noted", "y")])

    result = _boundary(kube, decides).run(Key("TrainingJob", "ns", "t"), _tj_body())
    assert result.result == "conflict" and result.again is not None
    assert kube.events == ["TrainingStarted"]


def test_an_invalid_spec_is_said_once_and_errors_never_escape_the_pass() -> None:
    kube = RecordingKube()

    def invalid(o: TrainingJob, generation: int | None, deps: Any, now: Any) -> Outcome:
        raise InvalidSpec("spec.training.estimator: not allowed")

    boundary = _boundary(kube, invalid)
    assert boundary.run(Key("TrainingJob", "ns", "t"), _tj_body()).result == "invalid"
    assert kube.events == ["InvalidSpec"] and kube.patches[0]["phase"] == "Invalid"
    already = {**kube.patches[0], "observedGeneration": 1}
    # The body the pass read is older than the status it just wrote: it waits for the watch, deciding nothing.
    assert boundary.run(Key("TrainingJob", "ns", "t"), _tj_body(already)).result == "waiting"
    assert boundary.run(Key("TrainingJob", "ns", "t"), _tj_body(already, rv=2)).result == "invalid"
    assert kube.events == ["InvalidSpec"]  # the same message is not posted again

    def broken(o: TrainingJob, generation: int | None, deps: Any, now: Any) -> Outcome:
        raise RuntimeError("a bug")

    result = _boundary(kube, broken).run(Key("TrainingJob", "ns", "t"), _tj_body())
    assert result.result == "error" and result.backoff

    def throttled(o: TrainingJob, generation: int | None, deps: Any, now: Any) -> Outcome:
        e = ApiException(status=429, reason="Too Many Requests")
        e.headers = {"Retry-After": "7"}
        raise e

    result = _boundary(kube, throttled).run(Key("TrainingJob", "ns", "t"), _tj_body())
    assert (result.result, result.again, result.backoff) == ("retry", 7.0, True)

    def storage_down(o: TrainingJob, generation: int | None, deps: Any, now: Any) -> Outcome:
        raise ApiException(status=504, reason="Gateway Timeout")

    result = _boundary(kube, storage_down).run(Key("TrainingJob", "ns", "t"), _tj_body())
    assert (result.result, result.backoff, result.cap) == ("retry", True, UNREACHABLE_CAP)  # back within seconds


def test_an_api_failure_is_described_in_one_line() -> None:
    e = ApiException(status=403, reason="Forbidden")
    e.body = '{"kind":"Status","message":"mlmodels is forbidden: User \\"x\\" cannot list"}'
    assert describe(e) == '403 Forbidden: mlmodels is forbidden: User "x" cannot list'
    assert describe(ApiException(status=500, reason="Internal")) == "500 Internal"
    assert describe(ConnectionRefusedError("refused\nmore")) == "refused"


def test_start_up_requests_are_tried_again_after_transient_failures_only() -> None:
    pauses: list[float] = []
    failures = [ApiException(status=503), ApiException(status=429), ConnectionResetError("reset")]

    def flaky() -> str:
        if failures:
            raise failures.pop(0)
        return "listed"

    assert retrying(flaky, what="a list", budget=60, sleep=pauses.append) == "listed"
    assert pauses == [0.5, 1.0, 2.0]  # doubling

    def forbidden() -> str:
        raise ApiException(status=403)

    with pytest.raises(ApiException):  # the same answer on every try: at once
        retrying(forbidden, what="a list", budget=60, sleep=pauses.append)
    assert len(pauses) == 3

    def refused() -> str:
        raise ConnectionRefusedError("refused")

    with pytest.raises(ConnectionRefusedError):  # the CRD check fails fast on a server that does not answer
        retrying(refused, what="a check", budget=60, unreachable=False, sleep=pauses.append)
    assert len(pauses) == 3

    def down() -> str:
        raise ApiException(status=500)

    with pytest.raises(ApiException):  # the budget ends the tries
        retrying(down, what="a list", budget=2.0, sleep=lambda s: None)


# -- activity read per namespace
def test_a_model_is_queued_only_when_its_activity_says_something_new() -> None:
    from modelfleet.controller.activity import ActivityBoard
    from modelfleet.reconcilers.utilization import Activity

    board = ActivityBoard()
    t = datetime.datetime(2026, 12, 2, 12, 0, tzinfo=datetime.UTC)
    assert board.post("ns", "m", Activity(True, request_rate=0.0))  # the first reading
    assert not board.post("ns", "m", Activity(True, request_rate=0.0))  # the same
    assert board.post("ns", "m", Activity(True, request_rate=2.0, last_request=t))  # traffic starts
    assert not board.post("ns", "m", Activity(True, request_rate=2.3, last_request=t + datetime.timedelta(seconds=5)))
    assert board.get("ns", "m").request_rate == 2.3  # type: ignore[union-attr]  # passes read the latest anyway
    assert board.post("ns", "m", Activity(True, request_rate=3.0, last_request=t))  # moved by more than a quarter
    assert board.post("ns", "m", Activity(False, error="Prometheus down"))


def test_the_activity_scan_groups_served_models_by_namespace_and_their_policies_prometheus() -> None:
    from modelfleet.cache.store import Store
    from modelfleet.controller.activity import serving_models

    store = Store()

    def model(name: str, namespace: str = "ns", gpu: int = 0) -> None:
        serving = {"resources": {"gpu": gpu}} if gpu else {}
        store.upsert("MLModel", obj(name, namespace=namespace, spec={"serving": serving}, status={}))

    def deployment(model: str, namespace: str = "ns") -> None:
        labels = {"modelfleet.io/model": model}
        store.upsert("Deployment", obj(model, namespace=namespace, metadata={"labels": labels}, spec={}, status={}))

    def policy(name: str, model: str, url: str = "", namespace: str = "ns") -> None:
        spec: dict[str, Any] = {"modelRef": {"name": model}, **({"prometheus": {"url": url}} if url else {})}
        store.upsert("DriftPolicy", obj(name, namespace=namespace, spec=spec, status={}))

    for name, gpu in (("plain", 0), ("on-gpu", 1), ("watched", 0), ("unserved", 0)):
        model(name, gpu=gpu)
    model("plain", namespace="other")
    for name in ("plain", "on-gpu", "watched"):
        deployment(name)
    deployment("plain", namespace="other")
    deployment("model-gone")  # its MLModel is not (or no longer) in the cache
    policy("a-no-url", "watched")
    policy("b", "watched", "http://p2:9090")
    policy("c", "watched", "http://p3:9090")  # the first URL by policy name wins
    policy("d", "plain", "http://p9:9090", namespace="elsewhere")  # another namespace's model of that name
    got = {group: sorted(models) for group, models in serving_models(store).items()}
    assert got == {
        ("ns", ""): [("on-gpu", True), ("plain", False)],
        ("ns", "http://p2:9090"): [("watched", False)],
        ("other", ""): [("plain", False)],
    }


def test_one_namespace_query_set_answers_for_every_model() -> None:
    from modelfleet.reconcilers.utilization import namespace_activity

    class Sample:
        def __init__(self, labels: dict[str, str], value: float) -> None:
            self.labels, self.value = labels, value

    asked: list[str] = []

    class Prom:
        def query(self, expr: str, at: Any = None) -> list[Sample]:
            asked.append(expr)
            if "model_info" in expr:
                return [Sample({"model": "a"}, 2), Sample({"model": "b"}, 1)]
            if "rate(" in expr:
                return [Sample({"model": "a"}, 1.5), Sample({"model": "b"}, float("nan"))]
            if "last_request" in expr:
                return [Sample({"model": "a"}, 1_796_000_000.0)]
            return [Sample({"pod": "b-1-x"}, 40.0), Sample({"pod": "b-1-y"}, 60.0), Sample({"pod": "other"}, 99.0)]

    got = namespace_activity(Prom(), "ns", {"b-1-x": "b", "b-1-y": "b"})
    assert len(asked) == 4 and all('namespace="ns"' in q and "by (" in q for q in asked)
    assert got["a"].request_rate == 1.5 and got["a"].last_request is not None and got["a"].gpu_percent is None
    assert got["b"].request_rate is None and got["b"].gpu_percent == 50.0  # a NaN rate is no evidence


def test_closing_the_request_gate_wakes_a_waiting_request_and_refuses_the_next() -> None:
    import threading

    gate = RequestGate(TokenBucket(0.01, 1))  # the second request would wait 100 s
    gate.enter()
    outcome: list[str] = []

    def second() -> None:
        try:
            gate.enter()
            outcome.append("sent")
        except ClientStopped:
            outcome.append("stopped")

    waiter = threading.Thread(target=second)
    waiter.start()
    gate.close()
    waiter.join(timeout=5)
    assert outcome == ["stopped"] and not waiter.is_alive()
    with pytest.raises(ClientStopped):
        gate.enter()


def test_a_deletion_the_watch_missed_is_found_by_the_membership_list() -> None:
    import asyncio

    from modelfleet.config import OperatorConfig
    from modelfleet.controller.controller import Controller

    def body(name: str, rv: int) -> dict[str, object]:
        meta = {"name": name, "namespace": "ml", "uid": name, "resourceVersion": str(rv), "labels": {}}
        return {"metadata": meta, "spec": {}, "status": {}}

    async def scenario() -> tuple[int, list[str], list[str]]:
        c = Controller(config=OperatorConfig(), kube=None, kinds={}, prometheus_for=lambda ns: None, clock=None)  # type: ignore[arg-type]
        for name, rv in (("kept", 5), ("deleted-meanwhile", 6), ("created-after-the-list", 12)):
            c.observe("DriftPolicy", "ADDED", body(name, rv))
        listed = {("DriftPolicy", None): ({("ml", "kept")}, 10)}  # the list was read at version 10
        gone = c.forget_missing(listed)  # type: ignore[arg-type]
        names = sorted(k.name for k in c.store.keys("DriftPolicy"))
        again = c.forget_missing({("DriftPolicy", None): ({("ml", "kept")}, None)})  # type: ignore[arg-type]
        return gone + again, names, [str(k) for k in c.store.keys("DriftPolicy")]

    gone, names, _ = asyncio.run(scenario())
    assert gone == 1 and names == ["created-after-the-list", "kept"]


def test_the_periodic_membership_check_lists_only_the_kinds_whose_count_differs_from_the_cache() -> None:
    """Each period counts every kind (cheap) and lists the metadata (kilobytes an object) only of a kind whose count
    differs from the cache's: a fleet whose watches missed nothing is never listed."""
    from modelfleet.config import OperatorConfig
    from modelfleet.controller.controller import Controller

    listed: list[tuple[str, str | None, str | None]] = []

    class Server:
        existing = {"driftpolicies": {("ml", "kept")}, "pods": {("ml", "p"), ("other", "q")}}

        def count(self, plural: str, namespace: str | None = None, *, selector: str | None = None) -> int:
            return len({n for n in self.existing.get(plural, set()) if namespace in (None, n[0])})

        def list_metadata(
            self, plural: str, namespace: str | None = None, *, selector: str | None = None
        ) -> tuple[set[tuple[str, str]], int]:
            listed.append((plural, namespace, selector))
            return {n for n in self.existing.get(plural, set()) if namespace in (None, n[0])}, 10

    def body(name: str, namespace: str = "ml") -> dict[str, object]:
        meta = {"name": name, "namespace": namespace, "uid": name, "resourceVersion": "5", "labels": {}}
        return {"metadata": meta, "spec": {}, "status": {}}

    async def scenario(namespaces: tuple[str, ...]) -> tuple[int, int, list[str]]:
        c = Controller(
            config=OperatorConfig(namespaces=namespaces),
            kube=Server(),  # type: ignore[arg-type]
            kinds={},
            prometheus_for=lambda ns: None,
            clock=None,  # type: ignore[arg-type]
        )
        c.observe("DriftPolicy", "ADDED", body("kept"))
        c.observe("Pod", "ADDED", body("p"))
        if not namespaces:
            c.observe("Pod", "ADDED", body("q", "other"))
        quiet = len(c.members_to_check())
        c.observe("DriftPolicy", "ADDED", body("deleted-while-the-watch-was-down"))
        gone = c.forget_missing(c.members_to_check())
        return quiet, gone, sorted(k.name for k in c.store.keys("DriftPolicy"))

    for namespaces in ((), ("ml",)):
        listed.clear()
        quiet, gone, kept = asyncio.run(scenario(namespaces))
        assert quiet == 0, "counts equal to the cache's: nothing is listed"
        assert gone == 1 and kept == ["kept"]
        assert listed == [("driftpolicies", (namespaces or (None,))[0], None)], "only the kind whose count differs"


def test_legacy_finalizers_are_found_in_the_cache_and_a_refused_patch_is_tried_from_the_newer_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kubernetes.client.exceptions import ApiException

    from modelfleet.config import OperatorConfig
    from modelfleet.controller import controller as core

    monkeypatch.setattr(core, "CONFLICT_PAUSE_SECONDS", 0.0)
    legacy = "modelfleet.io/finalizer"
    patches: list[tuple[str, str, dict[str, Any]]] = []

    class Server:
        refuse = 1

        def patch_metadata(self, plural: str, namespace: str, name: str, metadata: dict[str, Any]) -> None:
            patches.append((plural, name, metadata))
            if name == "m" and self.refuse:
                self.refuse -= 1
                c.observe("MLModel", "MODIFIED", obj("m", 8, metadata={"finalizers": [legacy, "x.io/theirs"]}))
                raise ApiException(status=409, reason="Conflict")

    c = core.Controller(
        config=OperatorConfig(),
        kube=Server(),
        kinds={},
        prometheus_for=lambda u: None,
        clock=None,  # type: ignore[arg-type]
    )
    c.observe("MLModel", "ADDED", obj("m", 5, metadata={"finalizers": [legacy, "x.io/theirs"]}))
    c.observe("TrainingJob", "ADDED", obj("m-v1", 6, metadata={"finalizers": [legacy]}))
    c.observe("DriftPolicy", "ADDED", obj("p", 7, metadata={"finalizers": ["x.io/theirs"]}))
    c.observe("MLModel", "ADDED", obj("clean", 9))
    assert c.remove_legacy_finalizers() == 2
    assert [(p, n, m["resourceVersion"]) for p, n, m in patches] == [
        ("mlmodels", "m", "5"),  # refused: the object had changed
        ("mlmodels", "m", "8"),  # again, from the version the watch brought
        ("trainingjobs", "m-v1", "6"),
    ]
    assert patches[1][2]["finalizers"] == ["x.io/theirs"] and patches[2][2]["finalizers"] == []


def test_kopf_lists_in_pages_and_lets_go_of_a_listed_body_soon() -> None:
    """Kopf's defaults (one list per kind, a per-object worker kept 5 s with the object's whole body) made a restart
    at 1,000 served models hold every listed object at once (408 MiB; bench/fleet prints the restart's peak)."""
    import kopf

    from modelfleet.handlers.startup import LIST_PAGE_SIZE, WATCH_WORKER_IDLE_SECONDS, configure_kopf
    from modelfleet.handlers.watch import WATCHED

    defaults = kopf.OperatorSettings()
    settings = kopf.OperatorSettings()
    configure_kopf(settings, 70.0)
    assert defaults.watching.chunk_size is None and defaults.queueing.idle_timeout == 5.0
    assert settings.watching.chunk_size == LIST_PAGE_SIZE and 0 < LIST_PAGE_SIZE <= 500
    assert settings.queueing.idle_timeout == WATCH_WORKER_IDLE_SECONDS < 1.0
    assert settings.watching.inactivity_timeout == 70.0
    assert settings.watching.label_selectors[WATCHED["Pod"]], "children are selected on the API server"


def test_kopf_keeps_no_memory_of_a_watched_object_between_its_events() -> None:
    from modelfleet.handlers.startup import watch_only_memories

    memories = watch_only_memories()
    assert memories is not None, "the installed Kopf still offers ephemeral recall"
    memobase = kopf.Memo(controller="c")

    async def events() -> tuple[Any, Any]:
        body = {"metadata": {"uid": "u1", "name": "m", "namespace": "ns"}}
        first = await memories.recall(body, memobase=memobase, noticed_by_listing=True)
        second = await memories.recall(body, memobase=memobase)
        return first, second

    first, second = asyncio.run(events())
    assert first is not second and first.memo["controller"] == "c" and first.memo is not memobase
    assert list(memories.iter_all_memories()) == []


def test_the_first_pass_does_not_wait_for_objects_deleted_between_the_count_and_the_list(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A pod counted at start but deleted before Kopf listed never reaches the cache: the kind is counted again once
    its cached count stops growing, instead of the first pass waiting out SYNC_TIMEOUT_SECONDS (it held a restart
    at 1,000 models for 60 s)."""
    import logging

    from modelfleet.config import OperatorConfig
    from modelfleet.controller import controller as core

    monkeypatch.setattr(core, "RECOUNT_SECONDS", 0.02)
    monkeypatch.setattr(core, "SYNC_TIMEOUT_SECONDS", 5.0)
    recounts: list[tuple[str, str | None]] = []

    class Server:
        def count(self, plural: str, namespace: str | None = None, *, selector: str | None = None) -> int:
            recounts.append((plural, selector))
            return {"pods": 2, "mlmodels": 1}.get(plural, 0)

    def body(name: str) -> dict[str, object]:
        return {"metadata": {"name": name, "namespace": "ml", "resourceVersion": "9", "labels": {}}, "spec": {}}

    async def scenario() -> bool:
        c = core.Controller(
            config=OperatorConfig(),
            kube=Server(),
            kinds={},
            prometheus_for=lambda ns: None,
            clock=None,  # type: ignore[arg-type]
        )
        c._expected = {"Pod": 3, "MLModel": 1}  # counted at start: the third pod was still there
        for kind, name in (("Pod", "a"), ("Pod", "b"), ("MLModel", "m")):
            c.observe(kind, "ADDED", body(name))
        await c._sync_deadline()
        return c.synced.is_set()

    with caplog.at_level(logging.INFO, logger="modelfleet.controller.controller"):
        assert asyncio.run(scenario())
    assert "did not reach the listed counts" not in caplog.text
    assert recounts == [("pods", core.CHILD_SELECTOR)], "only the stalled kind is counted again, with its selector"
    assert "counted again" in caplog.text
