"""A third-party stage1 written only from docs/stage1-abi.md; see stage1.py and build.py."""
