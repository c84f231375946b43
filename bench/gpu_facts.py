"""Print what this machine's GPU stack is, as the service sees it: the evidence of a GPU,
whether torch and CTranslate2 can use it, torch's arch list, the architectures of the NVRTC
torch loaded, and the capability-spoof decision with its reason.

    python -m bench.gpu_facts                 # on the host, or in the image:
    docker run --rm --gpus all --entrypoint python transcription-service:gpu -m bench.gpu_facts
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "patches"))

import capability_spoof

from app.runtime.accelerator import check_accelerator, with_torch


def main() -> None:
    check = with_torch(check_accelerator("auto"), "auto")
    import ctranslate2
    import torch

    facts: dict[str, object] = {
        "accelerator": asdict(check),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "torch_arch_flags": torch._C._cuda_getArchFlags() if torch.version.cuda else None,
        "nvrtc_archs": capability_spoof.nvrtc_supported_archs(torch.version.cuda),
        "ctranslate2": ctranslate2.__version__,
    }
    if torch.cuda.is_available():
        spoof = capability_spoof.active(torch)
        facts["gpu"] = torch.cuda.get_device_name()
        facts["capability_decision"] = (
            asdict(spoof.decision()) if spoof else "spoof not installed (patches/ not on PYTHONPATH)"
        )
        facts["ctranslate2_cuda_compute_types"] = sorted(ctranslate2.get_supported_compute_types("cuda"))
    print(json.dumps(facts, indent=2, default=str))


if __name__ == "__main__":
    main()
