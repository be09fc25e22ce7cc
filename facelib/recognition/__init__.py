"""Stage 4, recognition: using a trained model: enrol a gallery and identify photos, ONNX export."""
