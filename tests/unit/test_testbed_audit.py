"""The testbed reads its audit logs while the apiservers write them: only whole lines count."""

from __future__ import annotations

import json

from tests.testbed import harness


def test_audit_events_skip_a_line_cut_by_the_mark_and_a_half_written_last_line(tmp_path):
    (tmp_path / "audit").mkdir()
    lines = [json.dumps({"n": n}) + "\n" for n in range(3)]
    (tmp_path / "audit" / "us-east.log").write_text("".join(lines) + '{"n": 3, "half')
    bed = harness.Testbed(run_dir=tmp_path)
    bed.external = False
    assert bed.audit_events("us-east") == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert bed.audit_events("us-east", since=len(lines[0])) == [{"n": 1}, {"n": 2}]
    assert bed.audit_events("us-east", since=len(lines[0]) + 3) == [{"n": 2}], "a mark inside a line: that event is older"


def test_a_mark_inside_the_line_being_written_never_reads_the_rest_of_it_as_a_line(tmp_path):
    """The apiserver finishes the line (and writes the next) just after the reader skipped what
    there was of it: the reader must not take the rest of that line for a line (CI met it)."""
    (tmp_path / "audit").mkdir()
    log = tmp_path / "audit" / "us-east.log"
    log.write_text(json.dumps({"n": 0}) + "\n" + '{"n": 1, "namespace": "t-5d36')  # line 1 being written
    mark = log.stat().st_size

    class Racing:
        """The log as the reader sees it, with the writer going on right after its readline()."""
        def __init__(self):
            self.handle = log.open("rb")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def seek(self, *args):
            return self.handle.seek(*args)

        def read(self, *args):
            return self.handle.read(*args)

        def readline(self):
            line = self.handle.readline()
            with log.open("a") as writer:
                writer.write('e2d0fa"}\n' + json.dumps({"n": 2}) + "\n")
            return line

        def __iter__(self):
            return iter(self.handle)

    bed = harness.Testbed(run_dir=tmp_path)
    bed.external = False
    bed.audit_log = lambda cluster: type("LogPath", (), {"open": staticmethod(lambda mode: Racing())})()
    assert bed.audit_events("us-east", since=mark) == []
