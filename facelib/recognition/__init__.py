"""Stage 5, recognition: using a trained model: enrol a gallery and identify photos, ONNX export."""
