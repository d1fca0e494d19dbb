#!/usr/bin/env python3
"""Unused-dependency gate (scripts/test.sh): every dependency a crate declares must be named in its
Rust code (`name::`, `use name`, `name!`), or be listed here with the reason it is needed anyway.

usage: check_deps.py [ROOT]   (exit 1 and one line per unused dependency)
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

# Needed without being named in code.
LINK_ONLY = {
    "torch-sys": "links libtorch (rpath set by crates/rpath.rs); tch is used through it",
}


def sources(crate: Path, kind: str) -> str:
    dirs = {"dependencies": ["src"], "dev-dependencies": ["src", "tests", "benches", "examples"],
            "build-dependencies": []}[kind]
    files = [p for d in dirs for p in (crate / d).rglob("*.rs")] if dirs else []
    if kind == "build-dependencies" or kind == "dependencies":
        files += [crate / "build.rs"] if (crate / "build.rs").exists() else []
    return "\n".join(p.read_text() for p in files)


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
    manifests = [root / "Cargo.toml"] + sorted((root / "crates").glob("*/Cargo.toml"))
    bad = []
    for m in manifests:
        toml = tomllib.loads(m.read_text())
        if "package" not in toml:
            continue
        build = toml["package"].get("build")
        for kind in ("dependencies", "dev-dependencies", "build-dependencies"):
            text = sources(m.parent, kind)
            if kind != "dev-dependencies" and build:
                text += (m.parent / build).read_text()
            for dep in toml.get(kind, {}):
                if dep in LINK_ONLY:
                    continue
                name = dep.replace("-", "_")
                if not re.search(rf"(\b{name}::|\buse {name}\b|\b{name}!|extern crate {name}\b)", text):
                    bad.append(f"{m.relative_to(root)}: [{kind}] {dep} is declared but not used")
    for b in bad:
        print(b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
