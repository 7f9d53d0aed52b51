"""A test helper run by torchrun (or plainly): harness.train.run(spec, runtime, out, stop_at=...) in this process,
so that a test can stop a run of G processes part way and resume it at another G."""
import json
import sys

from harness.spec import RunSpec, Runtime
from harness.train import run

if __name__ == "__main__":
    spec_json, runtime_json, out, stop_at = sys.argv[1:5]
    run(RunSpec.from_dict(json.loads(spec_json)), Runtime(**json.loads(runtime_json)), out,
        stop_at=int(stop_at) if int(stop_at) > 0 else None)
