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
        # Live sessions answer a message over REALTIME_MAX_MESSAGE_MB with an error event; the
        # transport cuts only what is far past it (close code 1009), so memory stays bounded.
        ws_max_size=int(settings.realtime_max_message_mb * 2 * 1024 * 1024),
    )
    server = DrainingServer(config, app.state.gate, app.state.live, grace_s=settings.shutdown_grace_s)
    server.run()
    if not server.started:  # the lifespan refused to start (e.g. DEVICE=cuda without a usable GPU)
        sys.exit(3)


def prewarm() -> int:
    from app.main import configure_logging
    from app.serving.loader import ModelLoader
    from app.serving.status import ServiceState

    settings = settings_or_exit().model_copy(update={"warmup": True})
    configure_logging(settings.log_level)
    state = ServiceState(settings)
    ModelLoader(settings, state).load()
    status = state.snapshot()
    summary = {
        "phase": status.phase.value,
        "failure": status.failure,
        "startup_s": dict(status.startup_s),
        "warmup": asdict(status.warmup) if status.warmup else None,
        "jit_cache": asdict(status.jit_cache) if status.jit_cache else None,
    }
    # Last line of stdout, one JSON object (libraries print their own lines before it).
    print(json.dumps(summary), flush=True)
    return 0 if status.ready else 1


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
