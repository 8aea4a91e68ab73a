# predictor-py: slim Python, pinned requirements, the model trained at build
# time (deterministic: the same model.json as `make -C predictor-py model`),
# non-root. Build from the repository root:
#   docker build -f deploy/predictor.Dockerfile -t vigil-predictor .
FROM python:3.11-slim AS build
WORKDIR /app
COPY predictor-py/requirements.txt .
RUN python -m venv /venv && /venv/bin/pip install --no-cache-dir -r requirements.txt
COPY predictor-py/ .
# The gRPC stubs are generated, not committed (as `make stubs` does), then
# the model is trained, and the server must import before the image is kept.
RUN mkdir -p predictor/_pb \
 && /venv/bin/python -m grpc_tools.protoc --proto_path=predictor/_pb=proto \
      --python_out=. --pyi_out=. --grpc_python_out=. proto/prediction.proto \
 && touch predictor/_pb/__init__.py \
 && /venv/bin/python -m predictor.train --out model --card /tmp/MODEL_CARD.md \
 && /venv/bin/python -c "import predictor.server, predictor.healthcheck"

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home predictor
COPY --from=build /venv /venv
COPY --from=build /app /app
WORKDIR /app
USER 10001
EXPOSE 50051 9464
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["/venv/bin/python", "-m", "predictor.healthcheck", "127.0.0.1:50051"]
ENTRYPOINT ["/venv/bin/python", "-m", "predictor", "--addr", "0.0.0.0:50051", "--metrics-addr", "0.0.0.0:9464", "--model", "model/model.json"]
