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
