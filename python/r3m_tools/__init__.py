"""r3m's Python side: what the `r3m` binary runs and what users run beside it.

- `metaworld_env`: Meta-World tasks with a fixed camera, expert policies, layout seeds.
- `metaworld_bridge`: the line-protocol server `r3m eval bc` starts (the binary carries a copy of
  this file and of `metaworld_env`, so an installed `r3m` needs no checkout).
- `metaworld_demos`: the dataset generator (LeRobot v2.1 / v3.0, lossless video by default).
- `embed_texts`: text embeddings for R3M's language term (`r3m train --text-embeddings`).
- `convert_r3m`: an R3M (PyTorch) checkpoint to an r3m checkpoint.
- `selftest`: a check of the generator and the bridge (run by the test suite, tests/metaworld.rs).

Each module runs as a file (`python python/r3m_tools/metaworld_demos.py ...`) or as a module
(`python -m r3m_tools.metaworld_demos ...` with `python/` on PYTHONPATH or after
`pip install -e python`). Sibling modules are imported flat (the file's folder is put on
`sys.path`), so the bridge also runs from the folder the binary writes it to.
"""

__all__ = ["metaworld_env", "metaworld_bridge", "metaworld_demos", "embed_texts", "convert_r3m", "selftest"]
