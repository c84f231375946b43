import hashlib
from pathlib import Path

import pytest

from app.engine.whisper import sources as model_sources
from app.engine.whisper.sources import (
    BASE_MODEL_BIN_SHA256,
    BASE_MODEL_BIN_SIZE,
    ModelAssemblyError,
    assemble_bundled_base,
    resolve_whisper_source,
)


@pytest.fixture(scope="module")
def assembled(tmp_path_factory) -> Path:
    return assemble_bundled_base(tmp_path_factory.mktemp("cache"))


def test_bundled_base_is_assembled_and_verified(assembled):
    model_bin = assembled / "model.bin"
    assert model_bin.stat().st_size == BASE_MODEL_BIN_SIZE
    assert hashlib.sha256(model_bin.read_bytes()).hexdigest() == BASE_MODEL_BIN_SHA256
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        assert (assembled / name).is_file()
    assert not list(assembled.glob(".model.bin.*")), "no partial file left behind"


def test_second_call_reuses_the_assembled_model(assembled):
    before = (assembled / "model.bin").stat().st_mtime_ns
    assert assemble_bundled_base(assembled.parent.parent) == assembled
    assert (assembled / "model.bin").stat().st_mtime_ns == before


def test_a_corrupt_copy_is_rebuilt(tmp_path):
    target = assemble_bundled_base(tmp_path)
    with (target / "model.bin").open("r+b") as f:
        f.truncate(1000)
    assemble_bundled_base(tmp_path)
    assert (target / "model.bin").stat().st_size == BASE_MODEL_BIN_SIZE


def test_parts_that_do_not_add_up_are_refused(tmp_path, monkeypatch):
    part1 = tmp_path / "p1"
    part2 = tmp_path / "p2"
    for d in (part1, part2):
        d.mkdir()
    real1, _ = model_sources._part_paths()
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (part1 / name).write_bytes((real1 / name).read_bytes())
    (part1 / "model.bin.part1").write_bytes(b"not")
    (part2 / "model.bin.part2").write_bytes(b"a model")
    monkeypatch.setattr(model_sources, "_part_paths", lambda: (part1, part2))
    with pytest.raises(ModelAssemblyError, match="does not match"):
        assemble_bundled_base(tmp_path / "cache")
    assert not (tmp_path / "cache" / "bundled" / "whisper-base" / "model.bin").exists()


def test_auto_picks_large_v3_on_cuda_and_bundled_base_on_cpu(tmp_path):
    assert resolve_whisper_source("auto", "cuda", tmp_path).location == "large-v3"
    cpu = resolve_whisper_source("auto", "cpu", tmp_path)
    assert cpu.display_name == "bundled-base" and not cpu.english_only


def test_other_sources(tmp_path):
    tiny = resolve_whisper_source("bundled-tiny.en", "cpu", tmp_path)
    assert tiny.english_only and (Path(tiny.location) / "model.bin").is_file()
    local = resolve_whisper_source(str(tmp_path), "cpu", tmp_path)
    assert local.location == str(tmp_path)
    hub = resolve_whisper_source("Systran/faster-whisper-small.en", "cpu", tmp_path)
    assert hub.location == "Systran/faster-whisper-small.en" and hub.english_only
