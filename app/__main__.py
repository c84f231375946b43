"""`python -m app`: serve on the configured host and port."""

import uvicorn

from app.config import Settings


def main() -> None:
    settings = Settings()
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # One process owns the GPU models; concurrency is handled inside it.
        workers=1,
    )


if __name__ == "__main__":
    main()
