"""fer_core.progress: the time left at the rate measured so far (the app's export and face-stage bars)."""

from fer_core.progress import seconds_left, time_left_text


def test_time_left_follows_the_measured_rate_and_waits_for_one():
    """Issue 24: progress bars showed a count without the time left."""
    assert seconds_left(0, 100, 5.0) is None and time_left_text(0, 100, 5.0) == "estimating the time left"
    assert seconds_left(25, 100, 10.0) == 30.0 and time_left_text(25, 100, 10.0) == "about 30 s left"
    assert time_left_text(10, 100, 20.0) == "about 3 min left"  # 180 s: whole minutes from 90 s
    assert time_left_text(99, 100, 10.0) == "less than a second left"
    assert seconds_left(100, 100, 10.0) == 0.0
