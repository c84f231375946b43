import math

from app.engine.align.tidy import tidy_times
from app.transcript import Segment, Word

NAN = math.nan


def test_missing_times_are_filled_from_neighbours():
    seg = Segment(
        start=1.0,
        end=3.0,
        text="a 42 b",
        words=[Word("a", 1.0, 1.4), Word("42", NAN, NAN), Word("b", 2.0, 2.5)],
    )
    [tidy] = tidy_times([seg], duration=10.0)
    middle = tidy.words[1]
    assert (middle.start, middle.end) == (1.4, 2.0)


def test_times_are_clamped_ordered_and_well_formed():
    segments = [
        Segment(start=0.0, end=5.0, text="x y", words=[Word("x", -0.2, 0.5), Word("y", 4.0, 3.9)]),
        Segment(start=3.0, end=12.0, text="z", words=[Word("z", 3.5, 12.0)]),
    ]
    tidy = tidy_times(segments, duration=10.0)
    words = [w for s in tidy for w in s.words]
    assert all(0.0 <= w.start <= w.end <= 10.0 for w in words)
    starts = [w.start for w in words]
    assert starts == sorted(starts)
    assert tidy[1].end == 10.0


def test_segment_bounds_follow_words():
    seg = Segment(start=0.0, end=9.0, text="hi", words=[Word("hi", 2.0, 2.5)])
    [tidy] = tidy_times([seg], duration=10.0)
    assert (tidy.start, tidy.end) == (2.0, 2.5)
