"""Deployment package sizes (make bench): each bootstrap zipped as Lambda takes it (one file,
`bootstrap`, deflated), against the Python peer's package (the handler plus Powertools and its
dependencies; boto3 comes with Lambda's Python runtime, so it is not counted).

    python sizes.py BENCH_DIR BENCH_VENV PEER_DIR  ->  JSON on stdout
"""

import json
import pathlib
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from lambda_zip import zipped  # noqa: E402  (the one zip function: infra/lambda_zip.py)

bench, venv, peer = (pathlib.Path(a) for a in sys.argv[1:4])


sizes = {}
for binary in ["receiver", "worker", "receiver-o3", "worker-o3"]:
    path = bench / binary
    sizes[binary] = {"bytes": path.stat().st_size, "zip_bytes": zipped([("bootstrap", path)])}

# The peer's package: every file its distributions installed (from their RECORD), minus caches.
listing = subprocess.run(
    [str(venv / "bin" / "python"), "-c", """
import importlib.metadata as m, json
out = []
for dist in ["aws-lambda-powertools", "jmespath", "typing-extensions"]:
    d = m.distribution(dist)
    for f in d.files or []:
        p = d.locate_file(f).resolve()
        if "__pycache__" not in str(f) and not str(f).startswith("..") and p.is_file():
            out.append([str(f), str(p)])
print(json.dumps(out))
"""], check=True, capture_output=True, text=True).stdout
files = [(name, pathlib.Path(path)) for name, path in json.loads(listing)]
files.append(("app.py", peer / "app.py"))
sizes["python-powertools"] = {
    "bytes": sum(p.stat().st_size for _, p in files),
    "zip_bytes": zipped(files),
}
json.dump(sizes, sys.stdout, indent=2)
