"""``python -m tflite_export.runtime._tflm_probe FILE ARENA``: one TFLM trial in its own process.

Opens the file with that arena, invokes it once on zeros and prints TFLM's allocation record.
Imports neither TensorFlow nor edgecompress, so a trial costs a fraction of a second.
"""

import sys

import numpy as np


def main(argv) -> int:
    from tflite_micro.python.tflite_micro import runtime

    path, arena = argv[0], int(argv[1])
    with open(path, "rb") as f:
        data = f.read()
    interp = runtime.Interpreter.from_bytes(data, arena_size=arena)
    inputs = runtime.convert_bytearray_to_object(data).subgraphs[0].inputs
    for i in range(len(inputs)):
        detail = interp.get_input_details(i)
        interp.set_input(np.zeros(detail["shape"], dtype=detail["dtype"]), i)
    interp.invoke()
    sys.stdout.flush()
    interp.print_allocations()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
