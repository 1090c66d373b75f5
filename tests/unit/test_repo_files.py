"""Which files `apply` imports: `.featurelineignore` keeps scripts out (issue 9, item 11)."""

from __future__ import annotations

from pathlib import Path

import featureline as fl
from featureline.repo import definition_files

DEFS = """
import featureline as fl
driver = fl.Entity("driver", ["driver_id"])
"""
SCRIPT = """
from pathlib import Path
with open(Path(__file__).with_name("ran.txt"), "a") as fh:   # a data-generation script, no main guard
    fh.write("ran\\n")
"""


def test_ignore_file_keeps_scripts_from_being_imported(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    fl.init_repo(repo, project="files", with_data=False)
    (repo / "definitions.py").write_text(DEFS)
    (repo / "make_data.py").write_text(SCRIPT)
    (repo / "scripts").mkdir()
    (repo / "scripts" / "gen.py").write_text(SCRIPT)
    (repo / "scripts" / "more").mkdir()
    (repo / "scripts" / "more" / "x.py").write_text(SCRIPT)
    rel = lambda: sorted(p.relative_to(repo).as_posix() for p in definition_files(repo))  # noqa: E731
    assert rel() == ["definitions.py", "make_data.py", "scripts/gen.py", "scripts/more/x.py"]
    (repo / ".featurelineignore").write_text("# not definitions\nmake_data.py\nscripts/\n")
    assert rel() == ["definitions.py"]
    store = fl.FeatureStore(repo)
    store.apply()
    store.apply()
    assert not (repo / "ran.txt").exists() and not (repo / "scripts" / "ran.txt").exists()
    assert [e.name for e in store.list_entities()] == ["driver"]
    (repo / ".featurelineignore").write_text("*/x.py\n")
    assert rel() == ["definitions.py", "make_data.py", "scripts/gen.py"]
