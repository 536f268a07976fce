"""`cortex probe`: the image's health check. Reads the Cortexfile (so an edited host, port or
TLS setting is followed) and asks the local server's /health; exit 0 when it answers 200."""

from __future__ import annotations

import argparse
import ssl
import sys
import urllib.error
import urllib.request

from menlo_cortex.cortexfile.loader import load_from_environment
from menlo_cortex.cortexfile.schema import Cortexfile

from .defaults import loader_options

WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def health_url(config: Cortexfile) -> str:
    host = WILDCARDS.get(config.server.host, config.server.host)
    scheme = "https" if config.server.tls.cert is not None else "http"
    bracketed = f"[{host}]" if ":" in host else host
    return f"{scheme}://{bracketed}:{config.server.port}/health"


def probe(args: argparse.Namespace) -> int:
    config = load_from_environment(args.file, **loader_options(args)).config
    url = health_url(config)
    # Its own server, by address: the certificate need not name 127.0.0.1, and no secret is sent.
    context = ssl._create_unverified_context() if url.startswith("https") else None
    try:
        with urllib.request.urlopen(url, timeout=args.timeout, context=context) as answer:
            status = int(answer.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        print(f"cortex probe: {url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"cortex probe: {url}: HTTP {status}", file=sys.stderr)
        return 1
    return 0
