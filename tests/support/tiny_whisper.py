"""A tiny random Whisper network for the torch engine's tests (CPU here, the GPU tier too)."""

from __future__ import annotations

import torch

from app.engine.whisper.torch_model import WhisperNetwork
from app.engine.whisper.weights import Dimensions

DIMS = Dimensions(
    n_mels=8, n_vocab=12, d_model=16, encoder_layers=2, encoder_heads=2, decoder_layers=2, decoder_heads=2,
    text_positions=64, audio_positions=10,
)  # fmt: skip
EOT = 11


def tiny_network(seed: int = 0) -> WhisperNetwork:
    torch.manual_seed(seed)
    network = WhisperNetwork(DIMS)
    for parameter in network.parameters():
        torch.nn.init.normal_(parameter, std=0.5)
    for buffer in network.buffers():
        torch.nn.init.normal_(buffer, std=0.5)
    return network.eval().requires_grad_(False)


def audio_states(network: WhisperNetwork, windows: int, seed: int = 1) -> torch.Tensor:
    mel = torch.randn(windows, DIMS.n_mels, 2 * DIMS.audio_positions, generator=torch.Generator().manual_seed(seed))
    return network.decoder.cross_kv(network.encoder(mel.to(next(network.parameters()).device)))
