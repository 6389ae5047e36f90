"""What DVC reads of a stage: its output without the host-specific record, metrics without
timings, and nothing relinked when nothing changed."""

from __future__ import annotations

from pathlib import Path

from scenellm.stages.base import SUCCESS, StageResult
from scenellm.stages.publish import publish_output, stage_metrics


def test_publish_links_the_output_without_its_record_and_is_a_no_op_when_current(
        tmp_path: Path):
    source = tmp_path / "store"
    (source / "model").mkdir(parents=True)
    (source / "model" / "w.bin").write_bytes(b"w")
    (source / SUCCESS).write_text('{"computed_by": {"host": "here", "pid": 1}}')
    target = tmp_path / "outputs" / "vqvae"
    publish_output(source, target)
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == \
        ["model", "model/w.bin"]
    assert (target / "model" / "w.bin").stat().st_ino == (source / "model" / "w.bin").stat().st_ino
    ctime = (source / "model" / "w.bin").stat().st_ctime_ns
    publish_output(source, target)  # nothing changed: nothing relinked
    assert (source / "model" / "w.bin").stat().st_ctime_ns == ctime


def test_dvc_metrics_leave_out_timings():
    result = StageResult("features", "f" * 64, Path("."), False, 1.0, "h",
                         {"computed": 3, "seconds": 12.5, "frames_per_second": 80.0,
                          "detector_train_accuracy": 0.9, "flag": True, "nested": {"a": 1}})
    assert stage_metrics(result) == {"computed": 3, "detector_train_accuracy": 0.9}
