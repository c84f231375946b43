#!/usr/bin/env python3
"""Stand-in for ffmpeg on the lent GPU test machine, which has no ffmpeg and no room to carry one.

It understands only what the service asks (`... -i FILE [-t SECONDS] ... -f f32le ... -`) and
only 16 kHz mono 16-bit WAV input, which is all the GPU benchmarks send. `-t` matters: the
service's first-second check of an upload decodes only its start, and a stand-in that ignored
it would hand back the whole file (every job then refused as too long). Point FFMPEG_BINARY at
it there.
The product uses the real ffmpeg (the image installs it); never ship this.
"""

import sys
import wave

import numpy as np


def main() -> int:
    path = sys.argv[sys.argv.index("-i") + 1]
    seconds = float(sys.argv[sys.argv.index("-t") + 1]) if "-t" in sys.argv else None
    try:
        with wave.open(path) as wav:
            if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (16000, 1, 2):
                print("shim: only 16 kHz mono 16-bit WAV", file=sys.stderr)
                return 1
            frames = wav.getnframes() if seconds is None else min(wav.getnframes(), int(seconds * 16000))
            pcm = np.frombuffer(wav.readframes(frames), dtype="<i2")
    except (wave.Error, EOFError) as exc:
        print(f"shim: {exc}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write((pcm.astype(np.float32) / 32768.0).tobytes())
    return 0


if __name__ == "__main__":
    sys.exit(main())
