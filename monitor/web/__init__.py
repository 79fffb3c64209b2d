"""The daemon's HTTP side: status routes, the read API and the web UI (FastAPI, served by uvicorn)."""
