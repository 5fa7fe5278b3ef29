"""What `anchor deploy` leaves behind: the safe defaults, anchor.toml's ignore and .anchorignore."""

from __future__ import annotations

from pathlib import Path

import pytest

from anchor_deploy.cli.client import ClientError
from anchor_deploy.cli.deploy import plan_files
from anchor_deploy.source.ignore import IgnoreRules, Skipped, Why, summary_line

# (path, is a folder, expected reason or None for kept), with the defaults only.
DEFAULTS = [
    (".env", False, Why.SECRET),
    (".env.local", False, Why.SECRET),
    (".env.production", False, Why.SECRET),
    ("config/.env", False, Why.SECRET),
    (".envrc", False, Why.SECRET),
    (".env.example", False, None),
    (".env.sample", False, None),
    (".env.template", False, None),
    ("env.txt", False, None),
    ("environment.html", False, None),
    (".npmrc", False, Why.SECRET),
    ("web/.npmrc", False, Why.SECRET),
    (".pypirc", False, Why.SECRET),
    (".netrc", False, Why.SECRET),
    (".git", True, Why.VCS),
    (".git", False, Why.VCS),  # a worktree's .git file
    ("vendor/lib/.git", True, Why.VCS),
    (".hg", True, Why.VCS),
    (".svn", True, Why.VCS),
    (".github", True, None),
    (".gitignore", False, None),
    ("node_modules", True, Why.DEPENDENCIES),
    ("web/node_modules", True, Why.DEPENDENCIES),
    ("node_modules", False, None),  # only the folder
    ("__pycache__", True, Why.CACHE),
    ("pkg/__pycache__", True, Why.CACHE),
    ("app.pyc", False, Why.CACHE),
    ("pkg/mod.pyc", False, Why.CACHE),
    ("app.py", False, None),
    (".anchor", True, Why.PLATFORM),
    ("anchor.toml", False, Why.PLATFORM),
    (".anchorignore", False, Why.PLATFORM),
    (".DS_Store", False, Why.CLUTTER),
    ("img/.DS_Store", False, Why.CLUTTER),
    ("index.html", False, None),
    (".well-known", True, None),
    (".htaccess", False, None),
]


@pytest.mark.parametrize(("path", "is_dir", "why"), DEFAULTS)
def test_default_rules(path: str, is_dir: bool, why: Why | None) -> None:
    found = IgnoreRules().check(path, is_dir)
    assert (found.why if found else None) == why
    if found:
        assert found.path == (f"{path}/" if is_dir else path)


def test_a_folder_holding_pyvenv_cfg_is_a_local_environment_whatever_its_name() -> None:
    rules = IgnoreRules()
    for name in (".venv", "venv", "env", "py311"):
        found = rules.check(name, is_dir=True, is_venv=True)
        assert found == Skipped(f"{name}/", Why.LOCAL_ENV)
    assert rules.check("venv", is_dir=True, is_venv=False) is None  # no pyvenv.cfg: an ordinary folder


def test_include_dotenv_drops_the_env_rule_only() -> None:
    rules = IgnoreRules(include_dotenv=True)
    assert rules.check(".env", False) is None and rules.check("config/.env.local", False) is None
    assert rules.check(".npmrc", False) == Skipped(".npmrc", Why.SECRET)
    assert rules.check(".venv", True, is_venv=True) == Skipped(".venv/", Why.LOCAL_ENV)
    assert IgnoreRules().check(".env", False) == Skipped(".env", Why.SECRET, is_dotenv=True)


# (.anchorignore lines, path, is a folder, is a venv, expected reason or None for kept)
USER_RULES = [
    (["*.map"], "app.js.map", False, False, Why.IGNORED),
    (["*.map"], "js/app.js.map", False, False, Why.IGNORED),
    (["*.map", "!keep.js.map"], "keep.js.map", False, False, None),
    (["drafts/"], "drafts", True, False, Why.IGNORED),
    (["drafts/"], "drafts", False, False, None),  # a folder pattern does not match a file
    (["drafts/"], "blog/drafts", True, False, Why.IGNORED),
    (["/drafts/"], "blog/drafts", True, False, None),  # anchored at the root
    (["docs/*.md"], "docs/a.md", False, False, Why.IGNORED),
    (["docs/*.md"], "docs/sub/a.md", False, False, None),
    (["**/tmp"], "a/b/tmp", True, False, Why.IGNORED),
    (["# a comment", "", "secret.txt"], "secret.txt", False, False, Why.IGNORED),
    (["\\#hash.txt"], "#hash.txt", False, False, Why.IGNORED),
    (["!.npmrc"], ".npmrc", False, False, None),  # a user may re-include what a default skips
    (["!.env.public"], ".env.public", False, False, None),
    (["!.env.public"], ".env", False, False, Why.SECRET),
    (["!venv/"], "venv", True, True, None),
    (["!other/"], "venv", True, True, Why.LOCAL_ENV),
    (["*.html", "!index.html"], "about.html", False, False, Why.IGNORED),
    (["*.html", "!index.html"], "index.html", False, False, None),
    (["!index.html", "*.html"], "index.html", False, False, Why.IGNORED),  # the last match wins
]


@pytest.mark.parametrize(("lines", "path", "is_dir", "is_venv", "why"), USER_RULES)
def test_user_rules(lines: list[str], path: str, is_dir: bool, is_venv: bool, why: Why | None) -> None:
    found = IgnoreRules(lines).check(path, is_dir, is_venv)
    assert (found.why if found else None) == why


def write(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_plan_files_walks_the_tree_with_every_rule(tmp_path: Path) -> None:
    site = write(
        tmp_path / "site",
        {
            "index.html": "home",
            "about.html": "about",
            ".env": "SECRET=1",
            ".env.local": "SECRET=2",
            ".env.example": "SECRET=",
            ".npmrc": "//registry/:_authToken=x",
            ".venv/pyvenv.cfg": "home = /usr",
            ".venv/lib/site.py": "x",
            "venv/readme.txt": "not a virtualenv: no pyvenv.cfg",
            ".git/HEAD": "ref",
            "node_modules/x/index.js": "x",
            "pkg/__pycache__/m.cpython-311.pyc": "x",
            "pkg/m.py": "x",
            "pkg/old.pyc": "x",
            "drafts/post.md": "draft",
            "drafts/keep.md": "kept?",
            "assets/app.js.map": "map",
            "assets/keep.js.map": "map",
            "anchor.toml": '[build]\nignore = ["*.map"]\n',
            ".anchorignore": "# mine\ndrafts/\n!keep.js.map\n!drafts/keep.md\n",
        },
    )
    (site / "link.html").symlink_to(site / "index.html")
    plan = plan_files(site)
    assert set(plan.files) == {
        "index.html",
        "about.html",
        ".env.example",
        "venv/readme.txt",
        "pkg/m.py",
        "assets/keep.js.map",
    }
    skipped = {s.path: s.why for s in plan.skipped}
    assert skipped == {
        ".env": Why.SECRET,
        ".env.local": Why.SECRET,
        ".npmrc": Why.SECRET,
        ".venv/": Why.LOCAL_ENV,
        ".git/": Why.VCS,
        "node_modules/": Why.DEPENDENCIES,
        "pkg/__pycache__/": Why.CACHE,
        "pkg/old.pyc": Why.CACHE,
        "drafts/": Why.IGNORED,  # as in git: a file in an ignored folder cannot be re-included alone
        "assets/app.js.map": Why.IGNORED,
        "anchor.toml": Why.PLATFORM,
        ".anchorignore": Why.PLATFORM,
        "link.html": Why.NOT_REGULAR,
    }
    with_dotenv = plan_files(site, include_dotenv=True)
    assert {".env", ".env.local"} <= set(with_dotenv.files) and ".npmrc" not in with_dotenv.files


def test_a_bad_pattern_is_one_readable_error(tmp_path: Path) -> None:
    site = write(tmp_path / "site", {"index.html": "x", ".anchorignore": "!\n"})
    with pytest.raises(ClientError, match="bad ignore pattern"):
        plan_files(site)
    toml = write(tmp_path / "toml", {"index.html": "x", "anchor.toml": '[build]\nignore = "*.map"\n'})
    with pytest.raises(ClientError, match="must be a list"):
        plan_files(toml)


def test_summary_line_names_secrets_and_local_environments() -> None:
    skipped = [
        Skipped(".env", Why.SECRET, is_dotenv=True),
        Skipped(".env.local", Why.SECRET, is_dotenv=True),
        Skipped(".git/", Why.VCS),
        Skipped(".venv/", Why.LOCAL_ENV),
        Skipped("pkg/__pycache__/", Why.CACHE),
    ]
    assert summary_line(skipped) == (
        "skipped 2 files and 1 folder: .env, .env.local, .venv/ "
        "(secrets and local environments; see .anchorignore or --include-dotenv)"
    )
    only_npmrc = summary_line([Skipped(".npmrc", Why.SECRET)])
    assert only_npmrc == "skipped 1 file: .npmrc (secrets; see .anchorignore)"
    assert summary_line([Skipped(".git/", Why.VCS), Skipped("a.pyc", Why.CACHE)]) is None
    many = [Skipped(f"s{i}/.env", Why.SECRET, is_dotenv=True) for i in range(7)]
    line = summary_line(many)
    assert line is not None and line.startswith("skipped 7 files: s0/.env,")
    assert "2 more with --verbose" in line
