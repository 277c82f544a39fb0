"""ONNX model graphs: loading, normalisation passes (pure: model in, new model out) and analyses."""
