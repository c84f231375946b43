"""GPU speech-transcription service: WhisperX behind FastAPI.

Importing this package turns third-party telemetry off before anything can import the
libraries that send it, because a transcription service must not phone home:
- pyannote.audio 4 sends usage traces unless PYANNOTE_METRICS_ENABLED says otherwise;
- onnxruntime (1.31, Silero VAD) starts Microsoft's 1DS telemetry, which stores a device id
  under ``~/.cache/Microsoft/`` and reports to mobile.events.data.microsoft.com, unless
  ORT_DISABLE_TELEMETRY is set.
The values are forced, not defaulted, so an inherited environment cannot switch them back on.

It also silences the one warning pyannote.audio prints at every import where torchcodec cannot
load (its decoder; the aarch64 wheel links NVIDIA's NPP, and it needs the system's libpython):
the service hands pyannote audio in memory and never decodes with torchcodec.
"""

import os
import warnings

os.environ["PYANNOTE_METRICS_ENABLED"] = "0"
os.environ["ORT_DISABLE_TELEMETRY"] = "1"
warnings.filterwarnings("ignore", message=r"\s*torchcodec is not installed correctly", category=UserWarning)

__version__ = "0.1.0"
