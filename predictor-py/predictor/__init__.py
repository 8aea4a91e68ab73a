"""predictor-py: Vigil's risk model and its gRPC server.

Trained on synthetic data only; not clinically validated (MODEL_CARD.md).
"""
