"""The HTTP API and web page of a library (FastAPI + uvicorn)."""

from polymodal.serve.app import create_app, serve, serving

__all__ = ["create_app", "serve", "serving"]
