"""`python -m app` serves; `python -m app prewarm` loads, warms up and exits.

Prewarm fills the CUDA JIT cache and the model cache (both volumes in the container) right
after an image build, so the first real start finds every kernel already compiled.
"""

import json
import sys
from dataclasses import asdict

import uvicorn

from app.config_errors import settings_or_exit


def serve() -> None:
    from app.http.shutdown import DrainingServer
    from app.main import create_app

    settings = settings_or_exit()
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # One process owns the GPU models; concurrency is handled inside it.
        workers=1,
        # After the drain, connections still open get this long before they are closed.
        timeout_graceful_shutdown=2,
    )
    server = DrainingServer(config, app.state.gate, grace_s=settings.shutdown_grace_s)
    server.run()
    if not server.started:  # the lifespan refused to start (e.g. DEVICE=cuda without a usable GPU)
        sys.exit(3)


def prewarm() -> int:
    from app.main import configure_logging
    from app.serving.loader import ModelRegistry, Phase

    settings = settings_or_exit().model_copy(update={"warmup": True})
    configure_logging(settings.log_level)
    registry = ModelRegistry(settings)
    registry.load()
    summary = {
        "phase": registry.phase.value,
        "failure": registry.failure,
        "startup_s": registry.startup_timings,
        "warmup": asdict(registry.warmup) if registry.warmup else None,
        "jit_cache": asdict(registry.jit_cache) if registry.jit_cache else None,
    }
    # Last line of stdout, one JSON object (libraries print their own lines before it).
    print(json.dumps(summary), flush=True)
    return 0 if registry.phase is Phase.READY else 1


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    if command == "serve":
        serve()
    elif command == "prewarm":
        sys.exit(prewarm())
    else:
        sys.exit(f"usage: python -m app [serve|prewarm], not {command!r}")


if __name__ == "__main__":
    main()
