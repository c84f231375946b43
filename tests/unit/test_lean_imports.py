"""pyannote.audio is imported without transformers, and only torchmetrics' own flags notice."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from app.runtime.lean_imports import _names

REPO = Path(__file__).resolve().parents[2]


def test_requirement_names():
    assert _names("transformers>=4.4.0", "transformers")
    assert _names("transformers", "transformers")
    assert _names(" transformers[torch] >=4", "transformers")
    assert not _names("transformers-stream-generator", "transformers")
    assert not _names("torch>=2", "transformers")
    assert not _names(None, "transformers")


def test_the_default_stages_import_no_transformers(tmp_path: Path):
    """A fresh process (this one may have imported them already): the registry's imports, an English aligner."""
    script = f"""
        import sys
        from pathlib import Path
        from app.runtime.lean_imports import import_stage_module
        for module in ("faster_whisper", "whisperx.audio", "torch", "pyannote.audio", "torchaudio.pipelines"):
            import_stage_module(module)
        import whisperx.vads, whisperx.diarize, pyannote.audio.pipelines  # what the VAD and diarizer load
        from tests.support.random_aligner import write_random_aligner
        from app.engine.align import forced as forced_alignment
        from app.engine.align import models as align_models
        write_random_aligner(Path({str(tmp_path)!r}))
        align_models.load_align_model("en", "cpu", None, {str(tmp_path / "align")!r}, True)
        assert "transformers" not in sys.modules, "transformers was imported"

        from lightning_utilities.core.imports import RequirementCache
        from torchmetrics.utilities.imports import _TRANSFORMERS_GREATER_EQUAL_4_4
        assert not _TRANSFORMERS_GREATER_EQUAL_4_4  # torchmetrics' BERTScore & co. are off
        assert RequirementCache("transformers>=4.4.0")  # everyone else still gets the real answer
        print("ok")
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
