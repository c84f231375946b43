"""Which wav2vec2 model aligns a language's words, and loading it.

The defaults are WhisperX's (``whisperx.alignment.DEFAULT_ALIGN_MODELS_TORCH`` and ``_HF``):
torchaudio bundles for English, French, German, Spanish and Italian, Hugging Face models for
about 35 other languages. ``whisperx.alignment`` imports transformers (seconds of start-up),
which only the Hugging Face models need, so torchaudio models load here and only a Hugging
Face model goes through WhisperX's loader. tests/unit/test_align_models.py checks the tables
and the loaded metadata against WhisperX's.
"""

from __future__ import annotations

from typing import Any

LANGUAGES_WITHOUT_SPACES = ("ja", "zh")  # whisperx.alignment.LANGUAGES_WITHOUT_SPACES

TORCHAUDIO_MODELS = {  # whisperx.alignment.DEFAULT_ALIGN_MODELS_TORCH
    "en": "WAV2VEC2_ASR_BASE_960H",
    "fr": "VOXPOPULI_ASR_BASE_10K_FR",
    "de": "VOXPOPULI_ASR_BASE_10K_DE",
    "es": "VOXPOPULI_ASR_BASE_10K_ES",
    "it": "VOXPOPULI_ASR_BASE_10K_IT",
}


def default_model_name(language: str) -> str | None:
    if language in TORCHAUDIO_MODELS:
        return TORCHAUDIO_MODELS[language]
    from whisperx.alignment import DEFAULT_ALIGN_MODELS_HF

    return DEFAULT_ALIGN_MODELS_HF.get(language)


def is_torchaudio_model(name: str) -> bool:
    import torchaudio

    return name in torchaudio.pipelines.__all__


def load_align_model(
    language: str, device: str, model_name: str | None, model_dir: str, cache_only: bool
) -> tuple[Any, dict[str, Any]]:
    """``whisperx.load_align_model(language, device, model_name, model_dir, model_cache_only)``."""
    name = model_name or default_model_name(language)
    if name is None:
        raise ValueError(f"No default align-model for language: {language}")
    if not is_torchaudio_model(name):
        import whisperx

        return whisperx.load_align_model(
            language, device, model_name=name, model_dir=model_dir, model_cache_only=cache_only
        )
    import torchaudio

    bundle = getattr(torchaudio.pipelines, name)
    model = bundle.get_model(dl_kwargs={"model_dir": model_dir}).to(device)
    dictionary = {label.lower(): index for index, label in enumerate(bundle.get_labels())}
    return model, {"language": language, "dictionary": dictionary, "type": "torchaudio"}
