#!/usr/bin/env python3
"""Prints the files a Python program needs, one absolute path per line: the interpreter's standard library
(without its tests, IDLE, Tk and pip's bootstrap) and every file of the named distributions and of all they
require, with the extras asked for (`moto[s3]`). Run by the interpreter that will be copied."""
import importlib.metadata as metadata
import re
import sys
import sysconfig
from pathlib import Path

SKIPPED_STDLIB = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages", "__pycache__"}


def requirement(text):
    """(name, extras, marker) of a requirement line such as `PyYAML>=5.1; extra == "s3"`."""
    spec, _, marker = text.partition(";")
    match = re.match(r"\s*([A-Za-z0-9._-]+)\s*(?:\[([^\]]*)\])?", spec)
    extras = {e.strip().lower() for e in (match.group(2) or "").split(",") if e.strip()}
    return match.group(1), extras, marker.strip()


def wanted(marker, extras):
    """Whether a requirement is for these extras. One under another marker (a Python version, a platform) is
    taken when it is installed: what this interpreter installed is what it runs with."""
    named = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
    return named is None or named.group(1).lower() in extras


def main():
    files = set()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in stdlib.rglob("*"):
        if path.is_file() and not SKIPPED_STDLIB & set(path.relative_to(stdlib).parts):
            files.add(path)
    seen = set()
    todo = [requirement(root) for root in sys.argv[1:]]
    while todo:
        name, extras, _ = todo.pop()
        key = (name.lower().replace("_", "-"), frozenset(extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # required only elsewhere (another Python, another platform)
        for file in dist.files or []:
            path = Path(dist.locate_file(file)).resolve()
            if path.is_file() and "__pycache__" not in path.parts:
                files.add(path)
        for line in dist.requires or []:
            dep, dep_extras, marker = requirement(line)
            if wanted(marker, extras):
                todo.append((dep, dep_extras, ""))
    for path in sorted(files):
        print(path)


if __name__ == "__main__":
    main()
