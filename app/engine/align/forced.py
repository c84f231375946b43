"""``whisperx.align`` without its per-character pandas work: the same word times, faster.

WhisperX aligns a segment in three parts: the wav2vec2 forward pass (on the GPU), the CTC path
search (``ctc_path``), and turning the character path into sentences and words, which it does
with a pandas DataFrame per segment and boolean selections per sentence and per word: ~75 ms
of CPU for a 30 s window, more than the other two together on a GPU (bench/throughput.py,
issue 13). Here that last part is plain Python over lists. Every rule is WhisperX 3.8.6's,
in its order, including its quirks:

- a character's times are its path segment's frames scaled to the segment; spaces are aligned
  too (as ``|``), but a word's times come from its other characters;
- a sentence is punkt's span plus the character right after it (WhisperX selects
  ``index <= end``), and its end is the latest end of its non-space characters;
- words and sentences without times are interpolated (nearest, then filled forward and back);
- sentences with the same start and end are merged, and the segment's sentences come out
  sorted by (start, end), as a pandas ``groupby`` leaves them, dropping any still without one.

``tests/e2e/test_alignment_path.py`` checks the output against ``whisperx.align`` itself.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from app.engine.audio import SAMPLE_RATE

_NAN = float("nan")


def align_segments(
    transcript: list[dict[str, Any]], model: Any, metadata: dict[str, Any], audio: np.ndarray, device: str
) -> list[dict[str, Any]]:
    """``whisperx.align(transcript, model, metadata, audio, device)["segments"]``."""
    import torch
    from nltk.data import load as nltk_load
    from whisperx.utils import PUNKT_LANGUAGES

    from app.engine.align import ctc_path
    from app.engine.align.models import LANGUAGES_WITHOUT_SPACES

    waveform = torch.from_numpy(audio)[None, :]
    max_duration = waveform.shape[1] / SAMPLE_RATE
    dictionary: dict[str, int] = metadata["dictionary"]
    language, model_type = metadata["language"], metadata["type"]
    spaced = language not in LANGUAGES_WITHOUT_SPACES
    splitter = nltk_load(f"tokenizers/punkt_tab/{PUNKT_LANGUAGES.get(language, 'english')}.pickle")
    blank_id = 0
    for char, code in dictionary.items():
        if char in ("[pad]", "<pad>"):
            blank_id = code

    aligned: list[dict[str, Any]] = []
    for segment in transcript:
        t1, t2, text = segment["start"], segment["end"], segment["text"]
        avg_logprob = segment.get("avg_logprob")
        unaligned: dict[str, Any] = {"start": t1, "end": t2, "text": text, "words": [], "chars": None}
        if avg_logprob is not None:
            unaligned["avg_logprob"] = avg_logprob
        clean_cdx, clean_chars = _clean_characters(text, dictionary, spaced)
        if not clean_cdx or t1 >= max_duration:
            aligned.append(unaligned)
            continue
        text_clean = "".join(clean_chars)
        piece = waveform[:, int(t1 * SAMPLE_RATE) : int(t2 * SAMPLE_RATE)]
        lengths = None
        if piece.shape[-1] < 400:  # wav2vec2's shortest input
            lengths = torch.as_tensor([piece.shape[-1]]).to(device)
            piece = torch.nn.functional.pad(piece, (0, 400 - piece.shape[-1]))
        with torch.inference_mode():
            if model_type == "torchaudio":
                emissions, _ = model(piece.to(device), lengths=lengths)
            else:
                emissions = model(piece.to(device)).logits
            emissions = torch.log_softmax(emissions, dim=-1)
        emission = emissions[0].cpu().detach()
        if any(c not in dictionary for c in text_clean):
            # A wildcard column for characters the model lacks: the best non-blank score per frame.
            non_blank = torch.ones(emission.size(1), dtype=torch.bool)
            non_blank[blank_id] = False
            emission = torch.cat([emission, emission[:, non_blank].max(dim=1).values.unsqueeze(1)], dim=1)
            wildcard = emission.size(1) - 1
            tokens = [dictionary.get(c, wildcard) for c in text_clean]
        else:
            tokens = [dictionary[c] for c in text_clean]
        trellis = ctc_path.get_trellis(emission, tokens, blank_id)
        path = ctc_path.backtrack(trellis, emission, tokens, blank_id)
        if path is None:
            aligned.append(unaligned)
            continue
        char_segments = ctc_path.merge_repeats(path, text_clean)
        ratio = (t2 - t1) * piece.size(0) / (trellis.size(0) - 1)
        position = {cdx: index for index, cdx in enumerate(clean_cdx)}
        chars = _timed_characters(text, position, char_segments, ratio, t1, spaced)
        sentences = [_sentence(text, chars, start, end) for start, end in splitter.span_tokenize(text)]
        aligned.extend(_merge_sentences(sentences, avg_logprob))
    return aligned


def _clean_characters(text: str, dictionary: dict[str, int], spaced: bool) -> tuple[list[int], list[str]]:
    """Positions and lower-cased characters to align: all but surrounding and unknown whitespace."""
    leading = len(text) - len(text.lstrip())
    trailing = len(text) - len(text.rstrip())
    positions, chars = [], []
    for cdx, char in enumerate(text):
        lowered = char.lower().replace(" ", "|") if spaced else char.lower()
        if cdx < leading or cdx > len(text) - trailing - 1:
            continue
        if lowered in dictionary or lowered not in (" ", "|"):  # unknown characters take the wildcard
            positions.append(cdx)
            chars.append(lowered)
    return positions, chars


def _timed_characters(
    text: str, position: dict[int, int], char_segments: list[Any], ratio: float, t1: float, spaced: bool
) -> list[tuple[str, float, float, float, int]]:
    """(char, start, end, score, word index) per character of ``text``; NaN where not aligned."""
    chars = []
    word = 0
    for cdx, char in enumerate(text):
        start = end = score = _NAN
        if cdx in position:
            run = char_segments[position[cdx]]
            start, end, score = round(run.start * ratio + t1, 3), round(run.end * ratio + t1, 3), round(run.score, 3)
        chars.append((char, start, end, score, word))
        if not spaced or cdx == len(text) - 1 or text[cdx + 1] == " ":
            word += 1
    return chars


def _sentence(text: str, chars: list[tuple[str, float, float, float, int]], first: int, last: int) -> dict[str, Any]:
    span = chars[first : last + 1]  # WhisperX's selection includes the character after the span
    words_in_order: dict[int, list[tuple[str, float, float, float, int]]] = {}
    for item in span:
        words_in_order.setdefault(item[4], []).append(item)
    words: list[dict[str, Any]] = []
    for members in words_in_order.values():
        word_text = "".join(c[0] for c in members).strip()
        if not word_text:
            continue
        timed = [c for c in members if c[0] != " "]
        word: dict[str, Any] = {"word": word_text}
        start, end = _nanmin(c[1] for c in timed), _nanmax(c[2] for c in timed)
        scores = [c[3] for c in timed if not math.isnan(c[3])]
        if not math.isnan(start):
            word["start"] = start
        if not math.isnan(end):
            word["end"] = end
        if scores:  # numpy's mean and rounding, as pandas gives them
            word["score"] = round(np.mean(np.asarray(scores, dtype=np.float64)), 3)
        words.append(word)
    if words:
        _interpolate_word_times(words)
    return {
        "text": text[first:last],
        "start": _nanmin(c[1] for c in span),
        "end": _nanmax(c[2] for c in span if c[0] != " "),
        "words": words,
    }


def _interpolate_word_times(words: list[dict[str, Any]]) -> None:
    """Times for words with no aligned character, from their neighbours (WhisperX's rule)."""
    starts = [w.get("start", _NAN) for w in words]
    if not any(math.isnan(s) for s in starts) or all(math.isnan(s) for s in starts):
        return
    starts = _interpolate(starts)
    ends = _interpolate([w.get("end", _NAN) for w in words])
    for word, start, end in zip(words, starts, ends, strict=True):
        if "start" not in word and not math.isnan(start):
            word["start"] = start
        if "end" not in word and not math.isnan(end):
            word["end"] = end


def _merge_sentences(sentences: list[dict[str, Any]], avg_logprob: Any) -> list[dict[str, Any]]:
    """Sentences with interpolated times; equal (start, end) merged; sorted by them."""
    starts = _interpolate([s["start"] for s in sentences])
    ends = _interpolate([s["end"] for s in sentences])
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for sentence, start, end in zip(sentences, starts, ends, strict=True):
        if math.isnan(start) or math.isnan(end):
            continue  # a pandas groupby drops NaN keys
        group = groups.get((start, end))
        if group is None:
            group = groups[(start, end)] = {"start": start, "end": end, "text": [], "words": []}
            if avg_logprob is not None:
                group["avg_logprob"] = avg_logprob
        group["text"].append(sentence["text"])
        group["words"].extend(sentence["words"])
    merged = [groups[key] for key in sorted(groups)]
    for group in merged:
        group["text"] = " ".join(group["text"])
    return merged


def _interpolate(values: list[float]) -> list[float]:
    """``whisperx.utils.interpolate_nans`` (nearest, then forward and backward fill) on a list."""
    known = [i for i, v in enumerate(values) if not math.isnan(v)]
    if not known or len(known) == len(values):
        return list(values)
    filled = list(values)
    if len(known) > 1:  # pandas' "nearest" interpolates only between known values
        for i in range(known[0] + 1, known[-1]):
            if math.isnan(filled[i]):
                after = next(k for k in known if k > i)
                before = max(k for k in known if k < i)
                filled[i] = values[before] if i - before <= after - i else values[after]
    for i in range(known[0] - 1, -1, -1):  # back-fill the head, forward-fill the tail
        filled[i] = filled[i + 1]
    for i in range(known[-1] + 1, len(filled)):
        filled[i] = filled[i - 1]
    return filled


def _nanmin(values: Any) -> float:
    present = [v for v in values if not math.isnan(v)]
    return min(present) if present else _NAN


def _nanmax(values: Any) -> float:
    present = [v for v in values if not math.isnan(v)]
    return max(present) if present else _NAN
