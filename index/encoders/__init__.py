"""Turning text into vectors: the bulk embedder for builds, the question encoder (ONNX Runtime) and the ONNX export."""
