r"""``python -m predictor``: serves the risk model over gRPC until SIGTERM or SIGINT.

Example::

    .venv/bin/python -m predictor --addr 127.0.0.1:50051 \\
        --metrics-addr 127.0.0.1:9464 --model model/model.json
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from predictor.model import RiskModel
from predictor.server import start

log = logging.getLogger("predictor")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m predictor", description="Vigil's risk-model gRPC server."
    )
    parser.add_argument(
        "--addr", default="127.0.0.1:50051", help="gRPC listen address host:port (port 0: any)"
    )
    parser.add_argument(
        "--metrics-addr",
        default="127.0.0.1:9464",
        help="Prometheus /metrics listen address host:port; '' disables it",
    )
    parser.add_argument("--model", type=Path, default=Path("model/model.json"))
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=0.0,
        help="TEST ONLY: sleep this long before answering every RPC (a slow model)",
    )
    parser.add_argument("--workers", type=int, default=8, help="RPC thread pool size")
    parser.add_argument(
        "--tls-cert", type=Path, help="PEM certificate chain: serve TLS (with --tls-key)"
    )
    parser.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    parser.add_argument(
        "--grace", type=float, default=5.0, help="seconds in-flight RPCs get at shutdown"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Loads the model, serves until SIGTERM/SIGINT, then shuts down gracefully."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        model = RiskModel.load(args.model)
    except (OSError, ValueError, KeyError) as err:
        print(f"predictor: cannot load model {args.model}: {err}", file=sys.stderr)
        return 1

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if (args.tls_cert is None) != (args.tls_key is None):
        print("predictor: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    tls = None
    try:
        if args.tls_cert is not None and args.tls_key is not None:
            tls = (args.tls_key.read_bytes(), args.tls_cert.read_bytes())
        running = start(model, args.addr, args.metrics_addr, args.delay_ms, args.workers, tls)
    except (OSError, ValueError) as err:
        print(f"predictor: {err}", file=sys.stderr)
        return 1
    if args.delay_ms > 0:
        log.warning("--delay-ms %g: every RPC is delayed (test only)", args.delay_ms)
    line = f"predictor serving on {running.host}:{running.port} model {model.version}"
    if running.metrics_port is not None:
        line += f" metrics {args.metrics_addr.rpartition(':')[0]}:{running.metrics_port}"
    print(line, flush=True)

    while not stop.wait(1.0):
        pass
    running.stop(args.grace)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
