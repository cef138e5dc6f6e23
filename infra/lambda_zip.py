#!/usr/bin/env python3
"""Deployment packages zipped as Lambda takes them: one function, `zipped`, deflated at level 9,
for every size this project reports (infra/package.sh, infra/bench-check.sh and make bench's
infra/bench/sizes.py), so that one file never has two sizes.

    infra/lambda_zip.py PATH   ->   BYTES ZIPPED ARCH   (a bootstrap alone in its zip, and its ELF machine)
"""
import io
import pathlib
import sys
import zipfile


def zipped(files):
    """files: (name in the zip, path) pairs; the bytes of their zip."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, path in files:
            z.write(path, name)
    return len(buf.getvalue())


def main(path):
    path = pathlib.Path(path)
    machine = int.from_bytes(path.read_bytes()[18:20], "little")
    arch = {0x3E: "x86_64", 0xB7: "arm64"}.get(machine, hex(machine))
    print(path.stat().st_size, zipped([("bootstrap", path)]), arch)


if __name__ == "__main__":
    main(sys.argv[1])
