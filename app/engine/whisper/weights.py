"""Whisper's weights as torch tensors, read from the checkpoints users have.

Two formats, one set of names (``WhisperWeights.tensors``, the names of torch_model.py):
- a Hugging Face Whisper folder (``model.safetensors`` or ``pytorch_model.bin``, ``config.json``,
  ``generation_config.json``): ``openai/whisper-large-v3``, ``-turbo``, any fine-tune;
- a CTranslate2 Whisper folder (``model.bin``, ``config.json``): faster-whisper's models and the
  bundled ones, converted here at load time, so the torch engine runs with no hub at all.

Both keep their ``tokenizer.json`` beside the weights (faster-whisper's tokenizer reads it).
"""

from __future__ import annotations

import json
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

# CTranslate2's model.bin: the DataType enum's order in include/ctranslate2/types.h.
_CT2_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # bfloat16 is read apart
_CT2_BINARY_VERSION = 6
_WHISPER_POSITIONS = 448


class WeightsError(RuntimeError):
    """The folder holds no Whisper checkpoint this engine can read."""


@dataclass(frozen=True)
class Dimensions:
    n_mels: int
    n_vocab: int
    d_model: int
    encoder_layers: int
    encoder_heads: int
    decoder_layers: int
    decoder_heads: int
    text_positions: int = _WHISPER_POSITIONS
    audio_positions: int = 1500


@dataclass
class WhisperWeights:
    dims: Dimensions
    tensors: dict[str, torch.Tensor]
    alignment_heads: list[tuple[int, int]]  # (decoder layer, head) pairs that follow the audio in time
    suppress_ids: list[int]  # never decoded (Whisper's non-speech symbols)
    suppress_ids_begin: list[int] = field(default_factory=list)  # never the first token (blank, end of text)
    lang_ids: list[int] = field(default_factory=list)  # the language tokens, for language detection


def read_weights(folder: Path) -> WhisperWeights:
    if (folder / "model.bin").is_file():
        return _from_ctranslate2(folder)
    if (folder / "model.safetensors").is_file() or (folder / "pytorch_model.bin").is_file():
        return _from_transformers(folder)
    raise WeightsError(f"{folder} holds neither a CTranslate2 model.bin nor a Hugging Face Whisper checkpoint")


# --- CTranslate2 ---------------------------------------------------------------------------------


def _read_ct2_variables(path: Path) -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 model.bin (ctranslate2/specs/model_spec.py ``_serialize``).

    The arrays are views of the file mapped copy-on-write: nothing is read twice or copied
    (3 GB for large-v3) before torch moves the weights to their device."""
    with path.open("rb") as handle:
        data = memoryview(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY))
    offset = 0

    def unpack(fmt: str) -> int:
        nonlocal offset
        (value,) = struct.unpack_from(fmt, data, offset)
        offset += struct.calcsize(fmt)
        return int(value)

    def string() -> str:
        nonlocal offset
        length = unpack("H")
        text = bytes(data[offset : offset + length - 1]).decode()
        offset += length
        return text

    version = unpack("I")
    if version != _CT2_BINARY_VERSION:
        raise WeightsError(f"{path}: CTranslate2 binary version {version}, this reader knows {_CT2_BINARY_VERSION}")
    spec, _revision = string(), unpack("I")
    if spec != "WhisperSpec":
        raise WeightsError(f"{path} is a CTranslate2 {spec}, not Whisper")
    variables: dict[str, np.ndarray] = {}
    for _ in range(unpack("I")):
        name = string()
        shape = [unpack("I") for _ in range(unpack("B"))]
        type_id, size = unpack("B"), unpack("I")
        raw = data[offset : offset + size]
        offset += size
        if type_id == 5:  # bfloat16: the high half of a float32
            values = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            values = np.frombuffer(raw, _CT2_DTYPES[type_id])
        variables[name] = values.reshape(shape)
    for _ in range(unpack("I")):
        alias, target = string(), string()
        variables[alias] = variables[target]
    return variables


def _ct2_weight(variables: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    """A weight in float. CTranslate2's converter stores every weight that has a ``weight_scale``
    (linear layers, the token embedding, the encoder's convolutions) as integers when asked to
    (``--quantization int8*``: round(w × scale), a scale per output row; ``int16``: one scale for
    the tensor); those come back dequantised."""
    weight = variables[f"{prefix}/weight"]
    scale = variables.get(f"{prefix}/weight_scale")
    if np.issubdtype(weight.dtype, np.integer) and scale is not None:
        rows = scale.astype(np.float32).reshape(-1, *[1] * (weight.ndim - 1))
        return weight.astype(np.float32) / rows
    return weight


def _from_ctranslate2(folder: Path) -> WhisperWeights:
    variables = _read_ct2_variables(folder / "model.bin")
    config = json.loads((folder / "config.json").read_text())
    out: dict[str, np.ndarray] = {}

    def weighted(target: str, source: str) -> None:
        out[f"{target}.weight"] = _ct2_weight(variables, source)
        out[f"{target}.bias"] = variables[f"{source}/bias"]

    def norm(target: str, source: str) -> None:
        out[f"{target}.weight"] = variables[f"{source}/gamma"]
        out[f"{target}.bias"] = variables[f"{source}/beta"]

    for name in ("conv1", "conv2"):
        weighted(f"encoder.{name}", f"encoder/{name}")
    out["encoder.positions"] = variables["encoder/position_encodings/encodings"]
    norm("encoder.norm", "encoder/layer_norm")

    def layer(stack: str, i: int) -> tuple[str, str]:
        """A layer's self-attention and MLP, the same in encoder and decoder; its two names."""
        src, dst = f"{stack}/layer_{i}", f"{stack}.layers.{i}"
        norm(f"{dst}.attn_norm", f"{src}/self_attention/layer_norm")
        weighted(f"{dst}.attn.qkv", f"{src}/self_attention/linear_0")
        weighted(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        norm(f"{dst}.mlp_norm", f"{src}/ffn/layer_norm")
        weighted(f"{dst}.fc1", f"{src}/ffn/linear_0")
        weighted(f"{dst}.fc2", f"{src}/ffn/linear_1")
        return src, dst

    encoder_layers = _layer_count(variables, "encoder/layer_{}/ffn/linear_0/bias")
    decoder_layers = _layer_count(variables, "decoder/layer_{}/ffn/linear_0/bias")
    for i in range(encoder_layers):
        layer("encoder", i)
    out["decoder.embedding"] = _ct2_weight(variables, "decoder/embeddings")
    out["decoder.positions"] = variables["decoder/position_encodings/encodings"]
    norm("decoder.norm", "decoder/layer_norm")
    for i in range(decoder_layers):
        src, dst = layer("decoder", i)
        norm(f"{dst}.cross_norm", f"{src}/attention/layer_norm")
        weighted(f"{dst}.cross.q", f"{src}/attention/linear_0")
        weighted(f"{dst}.cross.kv", f"{src}/attention/linear_1")
        weighted(f"{dst}.cross.out", f"{src}/attention/linear_2")

    embedding = out["decoder.embedding"]
    dims = Dimensions(
        n_mels=out["encoder.conv1.weight"].shape[1],
        n_vocab=embedding.shape[0],
        d_model=embedding.shape[1],
        encoder_layers=encoder_layers,
        encoder_heads=int(variables["encoder/num_heads"]),
        decoder_layers=decoder_layers,
        decoder_heads=int(variables["decoder/num_heads"]),
        text_positions=out["decoder.positions"].shape[0],
        audio_positions=out["encoder.positions"].shape[0],
    )
    return WhisperWeights(
        dims=dims,
        tensors={name: torch.from_numpy(value) for name, value in out.items()},
        alignment_heads=[(int(layer), int(head)) for layer, head in config.get("alignment_heads") or []],
        suppress_ids=list(config.get("suppress_ids") or []),
        suppress_ids_begin=list(config.get("suppress_ids_begin") or []),
        lang_ids=list(config.get("lang_ids") or []),
    )


def _layer_count(variables: dict[str, np.ndarray], pattern: str) -> int:
    count = 0
    while pattern.format(count) in variables:
        count += 1
    return count


# --- Hugging Face transformers ----------------------------------------------------------------------


def _read_hf_tensors(folder: Path) -> dict[str, torch.Tensor]:
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(str(folder / "model.safetensors"))
    state: dict[str, torch.Tensor] = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    return state


def _from_transformers(folder: Path) -> WhisperWeights:
    config = json.loads((folder / "config.json").read_text())
    generation_path = folder / "generation_config.json"
    generation = json.loads(generation_path.read_text()) if generation_path.is_file() else {}
    source = {k.removeprefix("model."): v for k, v in _read_hf_tensors(folder).items()}
    out: dict[str, torch.Tensor] = {}

    def copy(target: str, src: str, bias: bool = True) -> None:
        out[f"{target}.weight"] = source[f"{src}.weight"]
        if bias:
            out[f"{target}.bias"] = source[f"{src}.bias"]

    def fused(target: str, parts: list[str]) -> None:
        # The key projection has no bias in Whisper: a zero bias keeps the fused projection exact.
        out[f"{target}.weight"] = torch.cat([source[f"{p}.weight"] for p in parts])
        out[f"{target}.bias"] = torch.cat(
            [source.get(f"{p}.bias", torch.zeros(source[f"{p}.weight"].shape[0])) for p in parts]
        )

    def layer(stack: str, i: int) -> tuple[str, str]:
        """A layer's self-attention and MLP, the same in encoder and decoder; its two names."""
        src = dst = f"{stack}.layers.{i}"
        copy(f"{dst}.attn_norm", f"{src}.self_attn_layer_norm")
        fused(f"{dst}.attn.qkv", [f"{src}.self_attn.{p}_proj" for p in "qkv"])
        copy(f"{dst}.attn.out", f"{src}.self_attn.out_proj")
        copy(f"{dst}.mlp_norm", f"{src}.final_layer_norm")
        copy(f"{dst}.fc1", f"{src}.fc1")
        copy(f"{dst}.fc2", f"{src}.fc2")
        return src, dst

    for name in ("conv1", "conv2"):
        copy(f"encoder.{name}", f"encoder.{name}")
    out["encoder.positions"] = source["encoder.embed_positions.weight"]
    copy("encoder.norm", "encoder.layer_norm")
    for i in range(config["encoder_layers"]):
        layer("encoder", i)
    out["decoder.embedding"] = source["decoder.embed_tokens.weight"]
    out["decoder.positions"] = source["decoder.embed_positions.weight"]
    copy("decoder.norm", "decoder.layer_norm")
    for i in range(config["decoder_layers"]):
        src, dst = layer("decoder", i)
        copy(f"{dst}.cross_norm", f"{src}.encoder_attn_layer_norm")
        copy(f"{dst}.cross.q", f"{src}.encoder_attn.q_proj")
        fused(f"{dst}.cross.kv", [f"{src}.encoder_attn.{p}_proj" for p in "kv"])
        copy(f"{dst}.cross.out", f"{src}.encoder_attn.out_proj")

    dims = Dimensions(
        n_mels=config["num_mel_bins"],
        n_vocab=config["vocab_size"],
        d_model=config["d_model"],
        encoder_layers=config["encoder_layers"],
        encoder_heads=config["encoder_attention_heads"],
        decoder_layers=config["decoder_layers"],
        decoder_heads=config["decoder_attention_heads"],
        text_positions=config.get("max_target_positions", _WHISPER_POSITIONS),
        audio_positions=config.get("max_source_positions", 1500),
    )
    suppress = generation.get("suppress_tokens", config.get("suppress_tokens")) or []
    begin = generation.get("begin_suppress_tokens", config.get("begin_suppress_tokens")) or []
    return WhisperWeights(
        dims=dims,
        tensors=out,
        alignment_heads=[(int(layer), int(head)) for layer, head in generation.get("alignment_heads") or []],
        suppress_ids=list(suppress),
        suppress_ids_begin=list(begin),
        lang_ids=sorted((generation.get("lang_to_id") or {}).values()),
    )
