"""Plain-Python services: audio, models, pipeline stages. Nothing here imports FastAPI."""
