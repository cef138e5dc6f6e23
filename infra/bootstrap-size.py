#!/usr/bin/env python3
"""A Lambda bootstrap's size as Lambda takes it: `BYTES ZIPPED ARCH` (the file, the file alone in a
deflated zip, and its ELF machine). Used by infra/package.sh and infra/bench-check.sh.

    infra/bootstrap-size.py PATH
"""
import io
import pathlib
import sys
import zipfile

path = pathlib.Path(sys.argv[1])
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.write(path, "bootstrap")
machine = int.from_bytes(path.read_bytes()[18:20], "little")
arch = {0x3E: "x86_64", 0xB7: "arm64"}.get(machine, hex(machine))
print(path.stat().st_size, len(buf.getvalue()), arch)
