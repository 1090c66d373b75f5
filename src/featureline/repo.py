"""A feature repo: a folder with featureline.yaml and Python modules defining objects."""

from __future__ import annotations

import importlib.util
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featureline.definitions import (
    Entity,
    FeatureService,
    FeatureView,
    OnDemandFeatureView,
    Permission,
)
from featureline.errors import DefinitionError

_SKIP_DIRS = {"data", ".venv", "venv", "__pycache__", ".git", "node_modules"}


@dataclass
class RepoContents:
    entities: list[Entity] = field(default_factory=list)
    views: list[FeatureView] = field(default_factory=list)
    services: list[FeatureService] = field(default_factory=list)
    odfvs: list[OnDemandFeatureView] = field(default_factory=list)
    permissions: list[Permission] = field(default_factory=list)

    def add(self, obj: object) -> None:
        kinds: tuple[tuple[list[Any], type], ...] = (
            (self.entities, Entity),
            (self.views, FeatureView),
            (self.services, FeatureService),
            (self.odfvs, OnDemandFeatureView),
            (self.permissions, Permission),
        )
        for bucket, kind in kinds:
            if isinstance(obj, kind) and not any(o is obj for o in bucket):
                bucket.append(obj)


IGNORE_FILE = ".featurelineignore"


def ignore_patterns(root: Path) -> list[str]:
    """Patterns of `.featurelineignore` (one per line, `#` comments; `dir/` ignores a folder)."""
    f = root / IGNORE_FILE
    if not f.exists():
        return []
    lines = (line.strip() for line in f.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _ignored(rel: str, patterns: list[str]) -> bool:
    import fnmatch

    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pat in patterns:
        pat = pat.lstrip("/")
        if pat.endswith("/"):  # a folder: anything under it
            if any(fnmatch.fnmatch(p, pat.rstrip("/")) for p in prefixes[:-1]):
                return True
        elif (
            fnmatch.fnmatch(rel, pat)
            or fnmatch.fnmatch(parts[-1], pat)
            or any(fnmatch.fnmatch(p, pat) for p in prefixes[:-1])
        ):
            return True
    return False


def definition_files(root: Path) -> list[Path]:
    """The modules `apply` imports: every `*.py` under the repo except hidden folders, data/,
    virtual environments, `test_*.py`, `setup.py` and what `.featurelineignore` lists."""
    patterns = ignore_patterns(root)
    out = []
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root)
        if any(part in _SKIP_DIRS or part.startswith(".") for part in rel.parts[:-1]):
            continue
        if p.name.startswith("test_") or p.name == "setup.py":
            continue
        if patterns and _ignored(rel.as_posix(), patterns):
            continue
        out.append(p)
    return out


def load_repo(root: Path) -> RepoContents:
    """Import every definitions module in the repo and collect the objects they define.

    A module that fails to import is reported with its file and line, all at once.
    """
    contents = RepoContents()
    problems: list[str] = []
    for path in definition_files(root):
        name = "featureline_repo_" + "_".join(path.relative_to(root).with_suffix("").parts)
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        sys.path.insert(0, str(root))
        try:
            spec.loader.exec_module(module)
        except SyntaxError as e:
            problems.append(
                f"{e.filename}:{e.lineno}: syntax error: {e.msg}. Fix: correct the Python syntax there."
            )
            continue
        except Exception as e:  # user code: report where it failed
            tb = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == str(path)]
            line = tb[-1].lineno if tb else "?"
            problems.append(f"{path}:{line}: {type(e).__name__}: {e}")
            continue
        finally:
            sys.path.remove(str(root))
            sys.modules.pop(name, None)
        for value in vars(module).values():
            contents.add(value)
    if problems:
        raise DefinitionError.from_problems(problems, "feature repo modules")
    return contents
