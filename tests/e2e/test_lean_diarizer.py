"""The offline diarizer without pyannote.audio gives the speaker turns pyannote's own
SpeakerDiarization gives with the same models, on real speech, with and without hints; its
clustering is pyannote's on the same embeddings; and nothing of pyannote.audio is imported."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from pyannote.audio.pipelines.clustering import AgglomerativeClustering as PyannoteClustering
from pyannote.core import SlidingWindowFeature

from app.engine.options import SpeakerHints
from app.engine.speakers.clustering import AgglomerativeClustering
from app.engine.speakers.diarization import PyannoteDiarizer
from app.engine.speakers.frames import hysteresis
from app.engine.speakers.offline import HYPERPARAMETERS, OfflineSpeakerDiarization, build_offline_pipeline
from app.serving.warmup import sample_speech
from tests.support.pyannote_reference import ReferenceDiarization, reference_pipeline
from tests.support.server import tiled_sample

HINTS = [
    SpeakerHints(),
    SpeakerHints(num_speakers=3),
    SpeakerHints(max_speakers=1),
    SpeakerHints(min_speakers=3, max_speakers=4),
]


@pytest.fixture(scope="module")
def ours() -> OfflineSpeakerDiarization:
    return build_offline_pipeline("cpu")


@pytest.fixture(scope="module")
def theirs() -> ReferenceDiarization:
    return reference_pipeline()


@pytest.mark.parametrize("hints", HINTS, ids=["no hints", "3 speakers", "at most 1", "3 to 4"])
def test_the_same_turns_as_pyannotes_pipeline(ours, theirs, hints):
    audio = sample_speech()
    our_turns = PyannoteDiarizer(ours, "offline", "cpu")(audio, hints)
    their_turns = PyannoteDiarizer(theirs, "offline", "cpu")(audio, hints)
    assert our_turns == their_turns
    assert our_turns, "the call has speech"


def test_the_same_turns_on_a_longer_recording(ours, theirs):
    """A minute: more chunks than a batch, and small clusters merged into large ones."""
    audio = tiled_sample(60.0)
    assert PyannoteDiarizer(ours, "offline", "cpu")(audio, SpeakerHints()) == PyannoteDiarizer(
        theirs, "offline", "cpu"
    )(audio, SpeakerHints())


@pytest.fixture(scope="module")
def embedded(ours) -> tuple[SlidingWindowFeature, np.ndarray]:
    """A minute of the call: its binarized segmentation and its local speakers' embeddings."""
    file = {"waveform": torch.from_numpy(tiled_sample(60.0)[None, :]), "sample_rate": 16000}
    binarized = hysteresis(ours.get_segmentations(file), 0.5)
    return binarized, ours.get_embeddings(file, binarized)


@pytest.mark.parametrize(
    ("num", "low", "high"), [(None, None, None), (2, None, None), (None, 3, 5), (None, None, 1), (6, None, None)]
)
def test_the_clustering_is_pyannotes(embedded, num, low, high):
    """On the sample call's real embeddings, with the hints pyannote's pipeline passes on."""
    binarized, embeddings = embedded
    reference = PyannoteClustering(metric="cosine")
    reference.instantiate(HYPERPARAMETERS["clustering"])
    theirs, _, _ = reference(
        embeddings=embeddings.copy(), segmentations=binarized, num_clusters=num, min_clusters=low,
        max_clusters=high if high is not None else np.inf,
    )  # fmt: skip
    clustering = AgglomerativeClustering(HYPERPARAMETERS["clustering"]["threshold"], 12)
    mine = clustering(embeddings.copy(), binarized.data, num, low, high if high is not None else np.inf)
    np.testing.assert_array_equal(mine, theirs)


def test_the_offline_diarizer_does_not_import_pyannote_audio():
    """Its whole point: pyannote.audio's import chain (Lightning, torchmetrics, transformers,
    torch._dynamo) is seconds of start-up after ready. Nor does labelling words with speakers."""
    code = (
        "import sys, numpy as np\n"
        "import app.engine.pipeline\n"
        "from app.engine.options import SpeakerHints\n"
        "from app.engine.speakers.assignment import assign_speakers\n"
        "from app.engine.speakers.diarization import PyannoteDiarizer\n"
        "from app.serving.warmup import sample_speech\n"
        "from app.transcript import Segment, Word\n"
        "turns = PyannoteDiarizer.offline('cpu')(sample_speech()[: 16000 * 10], SpeakerHints())\n"
        "segments = [Segment(0.0, 10.0, 'hello', [Word('hello', turns[0].start, turns[0].end)])]\n"
        "assign_speakers(segments, turns)\n"
        "chain = ('pyannote.audio', 'lightning', 'torchmetrics', 'transformers', 'torch._dynamo')\n"
        "heavy = [m for m in chain if m in sys.modules]\n"
        "print(segments[0].words[0].speaker is not None, heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "True []"


def test_batched_embeddings_are_pyannotes_own(ours, theirs):
    """The offline diarizer's get_embeddings gives what pyannote's gives, silent speakers NaN alike."""
    file = {"waveform": torch.from_numpy(sample_speech()[None, :]), "sample_rate": 16000}
    binarized = hysteresis(ours.get_segmentations(file), 0.5)
    mine = ours.get_embeddings(file, binarized)
    reference = theirs.get_embeddings(file, binarized, exclude_overlap=False)
    assert mine.shape == reference.shape == (*binarized.data.shape[::2], 192)
    assert np.array_equal(np.isnan(mine), np.isnan(reference))
    assert np.isnan(reference[..., 0]).sum() > 0.2 * reference[..., 0].size  # silent pairs were skipped
    assert np.allclose(mine, reference, atol=1e-4, equal_nan=True)
