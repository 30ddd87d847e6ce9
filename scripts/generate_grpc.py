"""Generates the Python gRPC stubs of the Open Inference Protocol from its .proto (grpcio-tools).

Called by scripts/generate.sh: `--write` regenerates runtime/trtforge_runtime/serve/grpc_gen/*_pb2*.py(i),
`--check` regenerates into a temporary folder and fails when the checked-in files differ (CI), so the
stubs always match the .proto and the pinned grpcio-tools.
"""

from __future__ import annotations

import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "runtime"
PROTO = Path("trtforge_runtime/serve/grpc_gen/grpc_predict_v2.proto")
OUTPUTS = ("grpc_predict_v2_pb2.py", "grpc_predict_v2_pb2.pyi", "grpc_predict_v2_pb2_grpc.py")


def generate(out_root: Path) -> Path:
    from grpc_tools import protoc  # dev dependency: only the generator needs it

    out_root.mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).parent / "_proto"
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{ROOT}",
            f"-I{include}",
            f"--python_out={out_root}",
            f"--pyi_out={out_root}",
            f"--grpc_python_out={out_root}",
            str(PROTO),
        ]
    )
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code} on {PROTO}")
    return out_root / PROTO.parent


def main(argv: list[str]) -> int:
    mode = argv[1] if len(argv) > 1 else "--write"
    if mode not in ("--write", "--check"):
        print(f"usage: {argv[0]} [--write|--check]", file=sys.stderr)
        return 2
    target = ROOT / PROTO.parent
    with tempfile.TemporaryDirectory() as tmp:
        generated = generate(Path(tmp))
        if mode == "--write":
            for name in OUTPUTS:
                shutil.copyfile(generated / name, target / name)
            print(f"wrote gRPC stubs to {target}")
            return 0
        stale = [
            n
            for n in OUTPUTS
            if not (target / n).exists() or not filecmp.cmp(generated / n, target / n, False)
        ]
    if stale:
        print(f"gRPC stubs out of date: {', '.join(stale)}; run scripts/generate.sh", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
