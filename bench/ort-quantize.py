"""ONNX Runtime's own static quantizer, for bench/static-zoo.ts's comparison rows (optional: it runs only
when ORT_PYTHON names a Python with the onnxruntime and onnx packages; the project does not need it).

    python bench/ort-quantize.py MODEL CALIB_DIR OUT METHOD

CALIB_DIR holds <sample>_<input>.npy files (one per sample and input, as bench/static-zoo.ts writes
them). The model is pre-processed as ONNX Runtime's documentation says (quant_pre_process: symbolic
shape inference and graph optimization), then quantize_static writes QDQ with uint8 activations and
int8 per-channel weights, the same form as `quantize: { dtype: int8, activations: uint8 }`, with
METHOD = MinMax | Percentile | Entropy calibration. Prints one JSON line: {"ok": true} or the error.
"""
import json
import os
import sys
import tempfile
import traceback

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process


class Reader(CalibrationDataReader):
    def __init__(self, folder):
        samples = {}
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".npy"):
                continue
            index, _, input_name = name[:-4].partition("_")
            samples.setdefault(int(index), {})[input_name] = np.load(os.path.join(folder, name))
        self.feeds = [samples[i] for i in sorted(samples)]
        self.at = 0

    def get_next(self):
        if self.at >= len(self.feeds):
            return None
        self.at += 1
        return self.feeds[self.at - 1]


def main():
    model, calib, out, method = sys.argv[1:5]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            pre = os.path.join(tmp, "pre.onnx")
            try:
                quant_pre_process(model, pre, skip_symbolic_shape=False)
            except Exception:  # noqa: BLE001 - some exports fail symbolic shape inference; quantize the model as it is
                pre = model
            quantize_static(
                pre,
                out,
                Reader(calib),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                calibrate_method=getattr(CalibrationMethod, method),
            )
        print(json.dumps({"ok": True}))
    except Exception as e:  # noqa: BLE001 - reported in the bench table
        print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"[:300], "trace": traceback.format_exc()[-800:]}))


if __name__ == "__main__":
    main()
