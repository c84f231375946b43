"""Write a CTranslate2 Whisper folder as a Hugging Face one (model.safetensors, config.json,
generation_config.json, tokenizer.json): the format of the GPU default (openai/whisper-large-v3).
Test-machine helper (bench/gpu/setup_device.sh runs it). Usage, repo root on PYTHONPATH:
    python bench/gpu/ct2_to_hf.py CT2_DIR OUT_DIR"""

import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from app.engine.whisper.weights import read_weights

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
w = read_weights(src)
t, d = w.tensors, w.dims
out: dict[str, torch.Tensor] = {}


def put(name, value):
    out["model." + name] = value.to(torch.float16).contiguous()


def copy(dst_name, src_name, bias=True):
    put(f"{dst_name}.weight", t[f"{src_name}.weight"])
    if bias:
        put(f"{dst_name}.bias", t[f"{src_name}.bias"])


def split(prefix, fused, parts):
    weights = t[f"{fused}.weight"].chunk(len(parts))
    biases = t[f"{fused}.bias"].chunk(len(parts))
    for p, wt, b in zip(parts, weights, biases, strict=True):
        put(f"{prefix}.{p}_proj.weight", wt)
        if p != "k":
            put(f"{prefix}.{p}_proj.bias", b)


for c in ("conv1", "conv2"):
    copy(f"encoder.{c}", f"encoder.{c}")
put("encoder.embed_positions.weight", t["encoder.positions"])
copy("encoder.layer_norm", "encoder.norm")
put("decoder.embed_tokens.weight", t["decoder.embedding"])
put("decoder.embed_positions.weight", t["decoder.positions"])
copy("decoder.layer_norm", "decoder.norm")
for stack, n in (("encoder", d.encoder_layers), ("decoder", d.decoder_layers)):
    for i in range(n):
        p = f"{stack}.layers.{i}"
        copy(f"{p}.self_attn_layer_norm", f"{p}.attn_norm")
        split(f"{p}.self_attn", f"{p}.attn.qkv", "qkv")
        copy(f"{p}.self_attn.out_proj", f"{p}.attn.out")
        copy(f"{p}.final_layer_norm", f"{p}.mlp_norm")
        copy(f"{p}.fc1", f"{p}.fc1")
        copy(f"{p}.fc2", f"{p}.fc2")
        if stack == "decoder":
            copy(f"{p}.encoder_attn_layer_norm", f"{p}.cross_norm")
            copy(f"{p}.encoder_attn.q_proj", f"{p}.cross.q")
            split(f"{p}.encoder_attn", f"{p}.cross.kv", "kv")
            copy(f"{p}.encoder_attn.out_proj", f"{p}.cross.out")
save_file(out, str(dst / "model.safetensors"))
config = {
    "model_type": "whisper",
    "num_mel_bins": d.n_mels,
    "vocab_size": d.n_vocab,
    "d_model": d.d_model,
    "encoder_layers": d.encoder_layers,
    "encoder_attention_heads": d.encoder_heads,
    "decoder_layers": d.decoder_layers,
    "decoder_attention_heads": d.decoder_heads,
    "max_target_positions": d.text_positions,
    "max_source_positions": d.audio_positions,
}
(dst / "config.json").write_text(json.dumps(config, indent=1))
generation = {
    "alignment_heads": [list(h) for h in w.alignment_heads],
    "suppress_tokens": w.suppress_ids,
    "begin_suppress_tokens": w.suppress_ids_begin,
}
(dst / "generation_config.json").write_text(json.dumps(generation, indent=1))
for f in ("tokenizer.json", "preprocessor_config.json", "vocabulary.txt", "vocabulary.json"):
    if (src / f).is_file():
        shutil.copy(src / f, dst / f)
print("hf tensors", len(out), "->", dst)
