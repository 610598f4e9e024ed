"""`charrec serve`: the drawing page and the JSON API over HTTP (`charrec.serve`).

Checks that the `serve` extra is installed, loads the model once, opens the listening socket
(so a port in use is one clear line), warns when the address reaches beyond this machine, and
runs uvicorn until Ctrl-C or SIGTERM, which stop it cleanly (exit 0). `register(app)` adds the
command to the main Typer app.
"""

from __future__ import annotations

import signal
import socket
from importlib.util import find_spec
from typing import Annotated, Any

import typer

from charrec.cli.common import Command, Debug, friendly_errors, plain_line
from charrec.cli.models import BackendOption, ModelOption
from charrec.errors import CharrecError, ConfigError

# module to import -> the PyPI package that provides it
SERVE_PACKAGES = {"uvicorn": "uvicorn", "starlette": "starlette",
                  "python_multipart": "python-multipart"}
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@friendly_errors
def serve_command(
    model: ModelOption = None,
    backend: BackendOption = "auto",
    host: Annotated[str, typer.Option(help="Address to listen on. The default answers this machine only; 0.0.0.0 answers every network it is on (there is no authentication).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free port).")] = 8000,
    max_body_mb: Annotated[float, typer.Option(help="Largest request body in MB; larger ones get HTTP 413.")] = 10.0,
    debug: Debug = False,
) -> None:
    """Serve a page to draw letters on and watch the network read them, and a JSON API
    (`POST /api/predict`) for other programs. Ctrl-C stops it."""
    missing = [package for module, package in SERVE_PACKAGES.items() if find_spec(module) is None]
    if missing:
        raise CharrecError(f"charrec serve needs {', '.join(missing)}: "
                           f"pip install 'charrec[serve]'")
    if not 0 < max_body_mb < 1024:  # also refuses nan
        raise ConfigError(f"--max-body-mb {max_body_mb}: give a size in MB above 0 and below "
                          f"1024")
    from charrec.serve.app import create_app
    from charrec.serve.reader import load_reader

    listener = _listen(host, port)  # first: a port in use is said before the model loads
    try:
        reader = load_reader(model, backend)  # once, for every request
        app = create_app(reader, max_body=int(max_body_mb * 1024 * 1024))
        plain_line(f"Model: {reader.description}", err=True)
        if host not in LOCAL_HOSTS:
            plain_line(f"listening on {host}: other machines on the network can reach this "
                       f"server, and it has no authentication (the default --host 127.0.0.1 is "
                       f"this machine only)", err=True, warning=True)
        address = listener.getsockname()
        shown_host = f"[{address[0]}]" if ":" in address[0] else address[0]
        plain_line(f"Serving http://{shown_host}:{address[1]}/ (Ctrl-C stops it)", err=True)
        _run(app, listener)
    finally:
        listener.close()
    plain_line("charrec serve stopped", err=True)


def _run(app: Any, listener: socket.socket) -> None:
    """uvicorn on `listener` until Ctrl-C or SIGTERM, after which it has shut down gracefully."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="info", server_header=False))
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.run(sockets=[listener])
    except KeyboardInterrupt:
        pass  # uvicorn passes the signal on to the previous handler once it has shut down
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM after uvicorn's graceful shutdown (uvicorn sends it on to the handler it found):
    end like Ctrl-C does, cleanly."""
    raise KeyboardInterrupt


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket for `host:port` (IPv4 or IPv6, as the name resolves)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as error:
        raise ConfigError(f"--host {host}: not an address of this machine ({error.strerror})"
                          ) from None
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(2048)  # connections wait in the queue until uvicorn accepts them
    except OSError as error:
        listener.close()
        hint = "; choose another --port" if error.errno in (98, 48) else ""
        raise CharrecError(f"cannot listen on {host}:{port}: {error.strerror}{hint}") from None
    return listener


def register(app: typer.Typer) -> None:
    app.command("serve", cls=Command)(serve_command)
