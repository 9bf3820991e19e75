"""A trained student behind HTTP: `dialpref serve STUDENT_DIR`, and `Client` / `AsyncClient` to call it.

The server (app.py, run by server.py) needs the `server` extra (FastAPI, uvicorn, websockets,
prometheus-client); the clients need only httpx, plus websockets for live sessions.
"""

from dialpref.serve.client import AsyncClient, Client, ServeError

__all__ = ["AsyncClient", "Client", "ServeError"]
