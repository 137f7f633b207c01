"""The soak benchmark's own verdicts, on a few seconds of its mixed clients."""
from benchmarks import soak


def test_short_soak_loses_nothing_and_every_abuse_gets_its_error():
    figures = soak.main(["--seconds", "8"])
    assert figures["alive"] and figures["lost"] == 0 and figures["client_crashes"] == 0
    assert figures["unexpected"] == 0
    assert figures["good_jobs"] > 0 and figures["abusive_requests"] >= len(soak.ABUSE_NAMES)
