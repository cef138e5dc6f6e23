#!/usr/bin/env python3
"""Prints, one per line, the `--config` arguments that cargo lambda applies to the Lambda builds
(`[workspace.metadata.lambda.build] config` in Cargo.toml), so a plain `cargo build` of a
function (make bench) builds exactly what `sam build` packages. Extra KEY=VALUE arguments are
appended after them (later ones win): the variants make bench measures.

    cargo build --release -p receiver $(infra/lambda-config.py | tr '\\n' ' ')   # no spaces in values
    mapfile -t cfg < <(infra/lambda-config.py profile.release.opt-level='"s"')
"""

import pathlib
import sys
import tomllib

root = pathlib.Path(__file__).resolve().parent.parent
manifest = tomllib.loads((root / "Cargo.toml").read_text())
build = manifest["workspace"]["metadata"]["lambda"]["build"]
if not build.get("disable_optimizations"):
    sys.exit("lambda-config.py: Cargo.toml's lambda build no longer disables cargo lambda's own "
             "optimizations: its defaults would apply too, and this script would not print them")
for value in [*build["config"], *sys.argv[1:]]:
    print(f"--config={value}")
