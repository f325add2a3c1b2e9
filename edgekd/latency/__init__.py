"""Latency prediction: ONNX graph cost analysis, the per-device cost model, on-device calibration."""
