"""The offline diarizer's frame-level steps, as whole-array operations.

pyannote's ``SpeakerDiarization`` adds each 5 s chunk's scores into the file's frames one chunk
at a time (``Inference.aggregate``, for the speaker count and again for the diarization), keeps
each chunk's clusters one chunk at a time (``reconstruct``), picks each frame's speakers one frame
at a time (``to_diarization``) and turns frames into turns one frame at a time (``Binarize``);
its thresholding (``binarize``) zips every chunk's frames in Python. On the 10-minute file those
steps held the H100 for about 0.4 s of the diarizer's 1.6 s: the GPU waits on them, and so does
every other request (the GIL). These functions give the same results
with numpy; tests/e2e/test_speaker_frames.py checks each against pyannote's own on real speech.

Only the arguments the diarizers use are covered (no Hamming window, no warm-up trim). The
offline diarizer runs them, and so do pyannote's pretrained pipelines (``pretrained_steps.py``).
"""

from __future__ import annotations

import numpy as np
from pyannote.core import Annotation, Segment, SlidingWindow, SlidingWindowFeature
from pyannote.core.utils.generators import string_generator


def _frame_middles(frames: SlidingWindow, count: int) -> np.ndarray:
    """``frames[i].middle`` for i < count, computed as pyannote.core does (start + i * step, then the middle)."""
    starts = frames.start + np.arange(count) * frames.step
    return 0.5 * (starts + (starts + frames.duration))


def overlap_add(
    scores: SlidingWindowFeature, frames: SlidingWindow, *, average: bool, missing: float = 0.0
) -> SlidingWindowFeature:
    """``Inference.aggregate(scores, frames, hamming=False, warm_up=(0, 0), missing=missing,
    skip_average=not average)``: every chunk's frames added at the file frame its start falls on
    (NaN scores count as absent), then divided by how many chunks covered each frame if ``average``.

    The sums are taken in float64 and stored as float32, where pyannote adds in float32 chunk by
    chunk: sums of 0/1 values (the speaker count) are the same exactly, others to float32's precision.
    """
    data = scores.data
    num_chunks, per_chunk, num_classes = data.shape
    chunks = scores.sliding_window
    frames = SlidingWindow(start=chunks.start, duration=frames.duration, step=frames.step)
    end = chunks.start + chunks.duration + (num_chunks - 1) * chunks.step + 0.5 * frames.duration
    num_frames = frames.closest_frame(end) + 1

    # frames.closest_frame(chunk.start + 0.5 * frames.duration), for every chunk at once
    middles = (chunks.start + np.arange(num_chunks) * chunks.step) + 0.5 * frames.duration
    first = np.rint((middles - frames.start - 0.5 * frames.duration) / frames.step).astype(np.int64)
    index = (first[:, None] + np.arange(per_chunk)[None, :]).ravel()  # (chunks * per_chunk,)

    summed = np.empty((num_frames, num_classes), dtype=np.float32)
    covered = np.empty((num_frames, num_classes), dtype=np.float32)
    for k in range(num_classes):  # one class at a time: a few hours' chunks hold hundreds of MB
        scores_k = data[:, :, k].ravel()
        present = ~np.isnan(scores_k)
        values = np.where(present, scores_k, 0.0)
        summed[:, k] = np.bincount(index, weights=values, minlength=num_frames)[:num_frames]
        covered[:, k] = np.bincount(index, weights=present, minlength=num_frames)[:num_frames]
    result = summed / np.maximum(covered, 1e-12) if average else summed
    result[covered == 0.0] = missing
    return SlidingWindowFeature(result, frames)


def hysteresis(scores: SlidingWindowFeature, onset: float, initial_state: bool = False) -> SlidingWindowFeature:
    """``binarize(scores, onset=onset, initial_state=initial_state)`` for (chunks, frames, speakers)
    scores: a frame above ``onset`` is on, below it off, and exactly at it (or NaN, read as 0) as
    the frame before it; 1.0/0.0 in float64, as pyannote returns them."""
    data = np.nan_to_num(scores.data)
    on = data > onset
    decided = on | (data < onset)
    frame = np.arange(data.shape[1])[None, :, None]
    last = np.maximum.accumulate(np.where(decided, frame, -1), axis=1)  # the last decided frame so far
    state = np.take_along_axis(on, np.maximum(last, 0), axis=1)
    return SlidingWindowFeature(1.0 * np.where(last >= 0, state, initial_state), scores.sliding_window)


def speaker_count(binarized: SlidingWindowFeature, frames: SlidingWindow) -> SlidingWindowFeature:
    """``SpeakerDiarizationMixin.speaker_count(binarized, frames, warm_up=(0, 0))``: how many local
    speakers are active at each frame of the file, averaged over the chunks that cover it."""
    active = SlidingWindowFeature(np.sum(binarized.data, axis=-1, keepdims=True), binarized.sliding_window)
    count = overlap_add(active, frames, average=True, missing=0.0)
    count.data = np.rint(count.data).astype(np.uint8)
    return count


def clustered_segmentations(segmentations: SlidingWindowFeature, hard_clusters: np.ndarray) -> SlidingWindowFeature:
    """``reconstruct``'s first half: each chunk's scores per global cluster (the highest of its local
    speakers given that cluster; NaN where the chunk has none; local speakers at -2 are dropped)."""
    data = segmentations.data
    num_clusters = int(np.max(hard_clusters)) + 1
    clustered = np.full((data.shape[0], data.shape[1], num_clusters), np.nan)
    for k in range(num_clusters):  # a handful of clusters: one whole-file operation each
        member = hard_clusters == k  # (chunks, local speakers)
        chunks = np.flatnonzero(member.any(axis=1))
        if len(chunks):
            scores = np.where(member[chunks, None, :], data[chunks], -np.inf)
            clustered[chunks, :, k] = np.max(scores, axis=2)
    return SlidingWindowFeature(clustered, segmentations.sliding_window)


def top_speakers(segmentations: SlidingWindowFeature, count: SlidingWindowFeature) -> SlidingWindowFeature:
    """``to_diarization``: at each frame, the ``count`` clusters with the most summed score are on."""
    activations = overlap_add(segmentations, count.sliding_window, average=False, missing=0.0)
    _, num_speakers = activations.data.shape
    most = int(np.max(count.data))
    if num_speakers < most:
        activations.data = np.pad(activations.data, ((0, 0), (0, most - num_speakers)))
    extent = activations.extent & count.extent
    activations = activations.crop(extent, return_data=False)
    count = count.crop(extent, return_data=False)

    ranked = np.argsort(-activations.data, axis=-1)  # the order pyannote takes them in, ties included
    wanted = np.zeros((ranked.shape[0], 1), dtype=np.int64)  # frames past the count's end: none on
    rows = min(len(wanted), len(count.data))
    wanted[:rows] = count.data[:rows].reshape(-1, 1)
    chosen = np.arange(ranked.shape[1])[None, :] < wanted
    binary = np.zeros_like(activations.data)
    np.put_along_axis(binary, ranked, chosen.astype(binary.dtype), axis=1)
    return SlidingWindowFeature(binary, activations.sliding_window)


def active_regions(
    discrete: SlidingWindowFeature, min_duration_on: float = 0.0, min_duration_off: float = 0.0
) -> Annotation:
    """``to_annotation`` (pyannote's ``Binarize`` at 0.5, no padding) of 0/1 frames: each run of
    active frames of speaker k is a turn labelled k, from the middle of its first frame to the
    middle of the frame after it (or of the last frame)."""
    data = discrete.data
    num_frames, num_speakers = data.shape
    middles = _frame_middles(discrete.sliding_window, num_frames)
    active = Annotation()
    tracks = string_generator()
    for k in range(num_speakers):
        track = next(tracks)
        on = data[:, k] > 0.5
        edges = np.diff(on.astype(np.int8))
        starts = (np.flatnonzero(edges == 1) + 1).tolist()
        ends = (np.flatnonzero(edges == -1) + 1).tolist()
        if num_frames and on[0]:
            starts.insert(0, 0)
        if num_frames and on[-1]:  # still on at the end: up to the last frame's middle
            ends.append(num_frames - 1)
        for start, end in zip(starts, ends, strict=True):
            active[Segment(float(middles[start]), float(middles[end])), track] = k
    if min_duration_off > 0.0:
        active = active.support(collar=min_duration_off)
    if min_duration_on > 0:
        for segment, track in list(active.itertracks()):
            if segment.duration < min_duration_on:
                del active[segment, track]
    return active
