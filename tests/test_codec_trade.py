"""benchmarks/codec_trade.py: both codecs timed at the shipped DiT sizes, their steps split into decode and the rest."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import codec_trade  # noqa: E402


def test_both_codecs_are_timed_with_a_quarter_of_the_tokens_on_the_vae(tmp_path):
    out = tmp_path / "out"
    argv = ["--frame-sizes", "16", "--batch-sizes", "2", "--steps", "1", "--window", "2", "--repeats", "2", "--min-seconds", "0",
            "--out", str(out)]  # fmt: skip
    codec_trade.main(argv)
    report = json.loads((out / "codec_trade.json").read_text())
    pixels, vae = report["rows"]
    assert (pixels["codec"], pixels["tokens_per_frame"], vae["codec"], vae["tokens_per_frame"]) == ("pixels", 16, "vae", 4)
    for row in (pixels, vae):
        assert 0 < row["ms_decode"] and 0 < row["ms_per_step"] and row["frames_per_s"] == pytest.approx(2e3 / row["ms_per_step"], rel=0.01)
    assert vae["step_time_over_pixels"] > 0 and pixels["step_time_over_pixels"] == 1.0
    text = (out / "codec_trade.md").read_text()
    assert "| 16x16 | 2 | vae | 4 |" in text and "python benchmarks/codec_trade.py --frame-sizes 16" in text


def test_bad_sizes_are_refused_in_one_line(capsys):
    with pytest.raises(SystemExit):
        codec_trade.main(["--frame-sizes", "20"])
    assert "--frame-sizes must be multiples of 8" in capsys.readouterr().err
