"""The demo model that `make run` trains on first start: trained to the end, then reused."""

import pytest

from inference_worker import checkpoint, demo

pytestmark = pytest.mark.slow


def test_demo_trains_a_verified_model_once_and_reuses_it(tmp_path, capsys):
    out = tmp_path / "models" / "demo"  # nothing of it exists yet, as on a fresh clone

    assert demo.main(["--out", str(out), "--count", "24", "--epochs", "1"]) == 0

    assert demo.ready(out)
    checkpoint.verify(out)
    capsys.readouterr()
    assert demo.main(["--out", str(out), "--count", "24", "--epochs", "1"]) == 0
    assert capsys.readouterr().out == f"demo model ready: {out}\n"
