"""The generated gRPC stubs, with a clear error when they have not been built.

The stubs are generated at build time (``make stubs``) from
``proto/prediction.proto`` into ``predictor/_pb/`` and are not committed: they
must match the installed grpcio-tools and protobuf runtime.
"""

from __future__ import annotations

try:
    from predictor._pb import prediction_pb2, prediction_pb2_grpc
except ImportError as err:  # pragma: no cover - depends on the build
    raise ImportError(
        "predictor-py's gRPC stubs are missing: run `make -C predictor-py stubs`"
    ) from err

__all__ = ["prediction_pb2", "prediction_pb2_grpc"]
