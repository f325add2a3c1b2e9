"""Plain progress lines (off a terminal): what they say, and when."""


def test_plain_progress_gives_an_eta_only_once_five_percent_is_done(monkeypatch, capsys):
    """The first items' pace includes the set-up: an ETA from one of 5,952 timings was "about 70655 s left"."""
    import edgekd.progress as P

    monkeypatch.setattr(P, "PLAIN_EVERY_S", 0.0)
    line = P._Plain("calibrate", 1000, "done")
    line.update(1)
    line.update(49)
    line.update(50)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and "left" not in lines[0] and "left" not in lines[1] and "s left)" in lines[2]
