"""Container healthcheck: exit 0 when the server at ADDR reports SERVING.

Used by deploy/predictor.Dockerfile's HEALTHCHECK (the slim image has no
grpc_health_probe); Kubernetes uses its native gRPC probe instead.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def serving(addr: str, timeout: float = 2.0, ca: bytes | None = None) -> bool:
    """Report whether the standard health service at addr says SERVING.

    With ``ca`` (PEM), the channel is TLS, verified against it.
    """
    channel = (
        grpc.secure_channel(addr, grpc.ssl_channel_credentials(root_certificates=ca))
        if ca is not None
        else grpc.insecure_channel(addr)
    )
    with channel:
        try:
            resp = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return resp.status == health_pb2.HealthCheckResponse.SERVING


def main(argv: list[str]) -> int:
    """Run the check: 0 serving, 1 not, 2 for a usage error.

    ``HOST:PORT [--tls-ca FILE]``: with the server's CA, checks over TLS (a
    server started with --tls-cert).
    """
    ca: bytes | None = None
    if len(argv) == 3 and argv[1] == "--tls-ca":
        try:
            with open(argv[2], "rb") as f:
                ca = f.read()
        except OSError as err:
            print(f"healthcheck: {err}", file=sys.stderr)
            return 2
        argv = argv[:1]
    if len(argv) != 1:
        print("usage: python -m predictor.healthcheck HOST:PORT [--tls-ca FILE]", file=sys.stderr)
        return 2
    return 0 if serving(argv[0], ca=ca) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
