"""The daemon's HTTP side: status routes, the read API and the web UI (FastAPI, served by uvicorn).

May import: ``read`` (every answer), ``signals.metrics`` (the exposition), ``config``, ``judge``, ``domain``.
"""
