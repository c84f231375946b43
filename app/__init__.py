"""GPU speech-transcription service: WhisperX behind FastAPI.

Importing this package turns pyannote's telemetry off before anything can import pyannote:
pyannote.audio 4 sends usage traces to a third party unless PYANNOTE_METRICS_ENABLED says
otherwise, and a transcription service must not phone home. The value is forced, not
defaulted, so an inherited ``PYANNOTE_METRICS_ENABLED=1`` cannot switch it back on.
"""

import os

os.environ["PYANNOTE_METRICS_ENABLED"] = "0"

__version__ = "0.1.0"
