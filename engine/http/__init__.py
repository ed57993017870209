"""The HTTP side of the service: provider callbacks and the links customers click."""

from engine.http.app import build_http_app
from engine.http.server import HttpServer, serve_http

__all__ = ["HttpServer", "build_http_app", "serve_http"]
