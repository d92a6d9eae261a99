"""The latency benchmark's telling of live's own xruns from those that follow the server's."""

from __future__ import annotations

from benchmarks.latency import MATCH_S, own_incidents
from realtime.devices import JACK_CLIENT


def test_own_xruns_are_alone_unless_another_server_xrun_is_near() -> None:
    events = [
        (10.0, ["driver"]),  # the server's timer late: an underrun of live's just after follows from it
        (20.0, ["recorder", JACK_CLIENT]),  # another client held live up
        (30.0, [JACK_CLIENT]),  # live itself late, nothing else near: its own
        (40.0, [JACK_CLIENT, "player"]),
        (40.0 + MATCH_S / 2, ["driver"]),  # ... unless the timer was late beside it
    ]
    own_times = [10.0 + MATCH_S / 2, 20.0, 50.0]  # the callback's under/overruns; 50 s: alone
    assert own_incidents(own_times, events) == {"own": 5, "alone": 2, "timer": 2}
    assert own_incidents([], []) == {"own": 0, "alone": 0, "timer": 0}
