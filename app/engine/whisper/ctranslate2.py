"""Whisper on CTranslate2 (faster-whisper's model): the first ``WhisperEngine``.

The calls are WhisperX's batched inference (``whisperx.asr.FasterWhisperPipeline``): the same
prompt and beam search options, so the same text. They are written out here instead of
imported because WhisperX's version lives in a module that imports ``transformers`` (seconds
of start-up) and mutates ``self.tokenizer``/``self.options`` on the shared object per call
(whisperX issue #1171): here tokenizers are per language and task, and prompts per call.

Word times come from the model's cross-attention alignment heads and dynamic time warping,
as faster-whisper's ``word_timestamps=True``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.engine.decoding import Sampling
from app.engine.whisper.engine import AlignmentInput, Decoded, TokenizerCache, alignment_features, whisper_prompt
from app.engine.whisper.sources import WhisperSource
from app.runtime.timing import StepTimer


def ctranslate2_max_length(max_new_tokens: int) -> int:
    """The ``max_length`` under which CTranslate2's Whisper decodes ``max_new_tokens`` tokens.

    Its ``generate`` decodes at most ``min(max_length / 2, max_length - prompt)`` tokens
    (src/models/whisper.cc), so the default 448 decodes 224; the old ``N + 2`` decoded N / 2 + 1.
    """
    return 2 * max_new_tokens


@dataclass(frozen=True)
class BeamOptions:
    """WhisperX's defaults for batched decoding (``whisperx.asr.load_model``)."""

    beam_size: int = 5
    patience: float = 1.0
    length_penalty: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    suppress_blank: bool = True
    suppress_tokens: tuple[int, ...] = (-1,)


class CTranslate2Engine:
    """One loaded faster-whisper model, with ``replicas`` CTranslate2 replicas (one per scheduler thread)."""

    name = "ctranslate2"
    takes_short_windows = False
    refills_windows = False  # one generate() call per batch

    def __init__(self, model: Any, source: WhisperSource, model_path: Path | None = None) -> None:
        self._model = model
        self.source = source
        self.model_path = model_path
        self.options = BeamOptions()
        self.multilingual: bool = bool(model.model.is_multilingual)
        self._tokenizers = TokenizerCache(model.hf_tokenizer, self.multilingual)
        self.languages: frozenset[str] = frozenset(self._tokenizers.languages())
        self.n_mels = int(model.feat_kwargs.get("feature_size") or 80)
        ct2 = model.model
        self.feature_device = f"cuda:{ct2.device_index[0]}" if ct2.device == "cuda" else "cpu"
        self.model_seconds = StepTimer({"encode": 0.0, "decode": 0.0, "align_words": 0.0, "detect_language": 0.0})

    @classmethod
    def load(
        cls,
        source: WhisperSource,
        *,
        device: str,
        compute_type: str,
        cpu_threads: int,
        download_root: str,
        replicas: int = 1,
        hf_token: str | None,
        max_new_tokens: int | None = None,
    ) -> CTranslate2Engine:
        from faster_whisper import WhisperModel
        from faster_whisper.utils import download_model

        location = source.location
        if not os.path.isdir(location):  # a hub name: the cached snapshot (downloaded the first time)
            location = download_model(location, cache_dir=download_root, use_auth_token=hf_token)
        model = WhisperModel(
            location,
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            num_workers=replicas,  # CTranslate2 inter_threads: one replica per scheduler thread
            download_root=download_root,
            use_auth_token=hf_token,
        )
        if max_new_tokens is not None:
            model.max_length = ctranslate2_max_length(max_new_tokens)
        return cls(model, source, model_path=Path(location))

    def release(self) -> None:
        self._model.model.unload_model()  # frees the weights on the device now, not whenever Python collects

    def device_memory_mb(self) -> float | None:
        return None  # CTranslate2 does not say; its memory is outside torch's allocator (the loader measures it)

    def tokenizer(self, language: str, task: str) -> Any:
        return self._tokenizers.get(language, task)

    def prompt(self, tokenizer: Any, initial_prompt: str | None, hotwords: str | None = None) -> list[int]:
        return whisper_prompt(tokenizer, initial_prompt, hotwords)

    def prepare(self, batch_size: int, prompt: list[int]) -> None:
        pass  # its kernels are chosen (and JIT-compiled) by the warmup's decoding itself

    def encode(self, features: np.ndarray) -> Any:
        from faster_whisper.transcribe import get_ctranslate2_storage

        # As in WhisperX: across several GPUs the next job may run elsewhere, so move it to the CPU.
        model = self._model.model
        to_cpu = model.device == "cuda" and len(model.device_index) > 1
        with self.model_seconds("encode"):
            return model.encode(get_ctranslate2_storage(features), to_cpu=to_cpu)

    def decode(
        self, features: np.ndarray, prompt: list[int], sampling: Sampling, *, logprobs: bool = False
    ) -> list[Decoded]:
        encoded = self.encode(features)
        with self.model_seconds("decode"):
            results = self.generate(encoded, [prompt] * features.shape[0], sampling.temperature)
        sequences = [r.sequences_ids[0] for r in results]
        token_logprobs = self._token_logprobs(encoded, prompt, sequences) if logprobs else [None] * len(results)
        return [
            Decoded(
                tokens=sequence,
                avg_logprob=_avg_logprob(r.scores[0], len(sequence), self.options.length_penalty),
                no_speech_prob=r.no_speech_prob,
                token_logprobs=chosen,
            )
            for r, sequence, chosen in zip(results, sequences, token_logprobs, strict=True)
        ]

    def _token_logprobs(self, encoded: Any, prompt: list[int], sequences: list[list[int]]) -> list[list[float] | None]:
        """The decoder's log-probability of each decoded text token after ``prompt``.

        CTranslate2's beam search does not return them (``return_logits_vocab`` is empty with
        beams), so the chosen tokens are scored again in one teacher-forced pass: ``align``
        with the decode's own prompt gives each token's probability.
        """
        eot = self.tokenizer("en", "transcribe").eot  # the same for every language and task
        texts = [[t for t in sequence if t < eot] for sequence in sequences]
        # A window with no text is scored on the end of text alone (align wants a token), then dropped.
        with self.model_seconds("token_logprobs"):
            results = self._model.model.align(
                encoded, prompt, [text or [eot] for text in texts], [_WINDOW_FRAMES] * len(texts)
            )
        chosen: list[list[float] | None] = []
        for text, result in zip(texts, results, strict=True):
            probabilities = np.asarray(result.text_token_probs[: len(text)], dtype=np.float64)
            chosen.append(np.log(np.maximum(probabilities, 1e-12)).tolist())
        return chosen

    def generate(self, encoded: Any, prompts: list[list[int]], temperature: float) -> Any:
        o = self.options
        beam_size, sampling = o.beam_size, {}
        if temperature > 0:  # one draw from the whole distribution, as faster-whisper samples
            beam_size, sampling = 1, {"sampling_temperature": temperature, "sampling_topk": 0}
        return self._model.model.generate(
            encoded,
            prompts,
            beam_size=beam_size,
            **sampling,
            patience=o.patience,
            length_penalty=o.length_penalty,
            max_length=self._model.max_length,
            suppress_blank=o.suppress_blank,
            suppress_tokens=list(o.suppress_tokens),
            no_repeat_ngram_size=o.no_repeat_ngram_size,
            repetition_penalty=o.repetition_penalty,
            return_scores=True,
            return_no_speech_prob=True,
        )

    def detect_language(self, features: np.ndarray) -> list[tuple[str, float]]:
        encoded = self.encode(features)
        with self.model_seconds("detect_language"):
            results = self._model.model.detect_language(encoded)
        return [(r[0][0][2:-2], float(r[0][1])) for r in results]

    def alignment_features(self, audio: np.ndarray) -> tuple[np.ndarray, int]:
        return alignment_features(self.n_mels, audio)

    def align_words(self, inputs: list[AlignmentInput], tokenizer: Any) -> list[list[dict[str, Any]]]:
        encoded = self.encode(np.stack([i.features for i in inputs]))
        with self.model_seconds("align_words"):
            alignments: list[list[dict[str, Any]]] = self._model.find_alignment(
                tokenizer, [i.tokens for i in inputs], encoded, [i.num_frames for i in inputs]
            )
        return alignments


_WINDOW_FRAMES = 3000  # 30 s of log-Mel frames: align's DTW length, unused by the probabilities


def _avg_logprob(score: float, length: int, length_penalty: float) -> float:
    # CTranslate2 returns the length-normalised score; WhisperX undoes it the same way.
    return float(score * (length**length_penalty) / (length + 1))
