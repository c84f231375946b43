"""Invented text, measured: what the service answers to audio that tempts Whisper to make words up.

The corpus (tests/support/hard_audio.py) is speech in English (espeak, and the real sample call),
cuts of the call, espeak speech in Spanish, French, Italian and German, noise, a chord, a tune
and near-silence with breaths. Every case goes through `/transcribe` on the CPU server, with the
bundled multilingual base and the bundled English-only tiny.en, `language` left to the model.

A case is **invented** when the answer has text where there should be none (noise, silence; or
any language but English for tiny.en), or text in the wrong language (base), and no warning
says so. The normal cases (English speech) are scored by WER.

    python -m bench.invented_text            # the service as it is (CTranslate2 on the CPU)
    python -m bench.invented_text --engine torch   # our torch engine, on the CPU
    python -m bench.invented_text --unchecked  # one beam-search pass, no no-speech rule, warnings
                                               # not counted: the batched path before the checks
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import httpx

from tests.support.hard_audio import HardCase, build_corpus
from tests.support.scoring import read_stm_text, word_error_rate
from tests.support.server import offline_cpu_env, post_audio, running_server

MODELS = ("bundled-base", "bundled-tiny.en")


def verdict(case: HardCase, model: str, answer: dict[str, Any], *, count_warnings: bool) -> tuple[bool, str]:
    """Whether the answer invents text, and what it said, in short."""
    text = answer["text"].strip()
    warned = count_warnings and bool(answer.get("warnings"))
    said = f"{answer.get('language')} {answer.get('language_probability') or 0:.2f} {text[:50]!r}"
    english_only = model.endswith(".en")
    if case.expect == "nothing" or (case.expect == "language" and english_only and case.language != "en"):
        return bool(text) and not warned, said
    if case.expect == "language":
        return bool(text) and answer.get("language") != case.language and not warned, said
    return False, said


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--unchecked", action="store_true")
    parser.add_argument("--engine", choices=("ctranslate2", "torch"), default="ctranslate2")
    args = parser.parse_args()
    from app.serving.warmup import sample_speech_path

    sample = sample_speech_path()
    form: dict[str, str] = {"word_timestamps": "false", "diarize": "false"}
    if args.unchecked:
        form |= {"temperature[]": "0", "no_speech_threshold": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cases = build_corpus(root / "corpus", sample, read_stm_text(sample.with_suffix(".stm")))
        models = {"WHISPER_MODEL": MODELS[0], "WHISPER_MODELS": ",".join(MODELS[1:])}
        env = offline_cpu_env(root, **models, ENABLE_DIARIZATION="false", ENGINE=args.engine)
        with (
            running_server(env, root / "server.log") as server,
            httpx.Client(base_url=server.url, timeout=600) as client,
        ):
            print(f"{'case':26} {'model':16} {'invented':8} {'WER':>5}  answer (language, probability, text), warnings")
            invented = judged = 0
            wers: dict[str, list[float]] = {m: [] for m in MODELS}
            for case in cases:
                for model in MODELS:
                    _, answer = post_audio(client, case.wav, model=model, **form)
                    made_up, said = verdict(case, model, answer, count_warnings=not args.unchecked)
                    wer = ""
                    if case.expect == "words":
                        wers[model].append(word_error_rate(case.text, answer["text"]))
                        wer = f"{wers[model][-1]:.3f}"
                    else:
                        judged += 1
                        invented += made_up
                    warned = "" if args.unchecked else "; ".join(w[:70] for w in answer.get("warnings", []))
                    print(f"{case.name:26} {model:16} {'YES' if made_up else '':8} {wer:>5}  {said} {warned}")
    print(f"invented text without a warning: {invented} of {judged} answers ({100 * invented / judged:.0f} %)")
    for model, scores in wers.items():
        print(f"WER of the English speech, {model}: " + ", ".join(f"{w:.3f}" for w in scores))


if __name__ == "__main__":
    main()
