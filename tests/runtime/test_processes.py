"""Process supervision of the dev cluster, as real processes."""

from __future__ import annotations

from pathlib import Path

from modelfleet.devcluster.processes import Supervisor, free_ports, marked_pids


def test_a_process_that_is_just_starting_is_not_taken_for_dead(tmp_path: Path) -> None:
    """Right after start, /proc/<pid>/environ may still show the parent's environment (fork before exec): start-up
    must not read that as an exit."""
    sup = Supervisor(tmp_path, "mf-test-just-started")
    try:
        for i in range(30):
            sup.start(f"p{i}", ["sleep", "30"])
            assert not sup.exited(f"p{i}")
    finally:
        sup.stop_all_marked(grace=2)
    assert list(marked_pids("mf-test-just-started")) == []
    for i in range(30):
        assert sup.exited(f"p{i}")


def test_free_ports_are_distinct_and_avoid_the_taken_ones() -> None:
    """Ports chosen together never repeat (one free_port() after another once gave the API server and the scheduler
    the same port, since nothing listened on it between the calls) and never reuse a port already handed out."""
    many = free_ports(200)
    assert len(set(many)) == 200
    taken = set(many[:100])
    assert not set(free_ports(200, taken=taken)) & taken
