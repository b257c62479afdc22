"""What git and Docker leave out: training outputs, checkpoints and caches, never a tracked file
nor anything docker/Dockerfile copies."""

import re
import shlex
import shutil
import subprocess

import pytest

from .helpers import REPO_ROOT


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)


def in_git_checkout() -> bool:
    return shutil.which("git") is not None and git("rev-parse", "--is-inside-work-tree").stdout.strip() == "true"


needs_git = pytest.mark.skipif(not in_git_checkout(), reason="not a git checkout")


@needs_git
def test_gitignore_leaves_out_outputs_but_no_tracked_file():
    assert git("ls-files", "-ci", "--exclude-standard").stdout == ""  # tracked files that a pattern would ignore
    for path in ("runs/x.pt", "runs/cft/checkpoint.pt", "evaluation/", "model.pt", ".ci-venv/bin/python", "store.h5"):
        assert git("check-ignore", "-q", path).returncode == 0, f"{path} is not ignored"
    shipped = [p for p in git("ls-files", "benchmarks/results").stdout.splitlines() if p.endswith(".pt")]
    assert shipped, "the pretrained encoder is shipped under benchmarks/results"
    for path in shipped:
        assert git("check-ignore", "-q", path).returncode == 1, f"{path} is shipped but ignored"


def dockerignore_patterns() -> list[tuple[bool, re.Pattern]]:
    """(negated, regex) per line of .dockerignore, matched as Docker does: from the context
    root, ``*`` within one path element, ``**`` across any number of them."""
    patterns = []
    for line in (REPO_ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated, line = line.startswith("!"), line.lstrip("!").strip("/")
        regex = re.escape(line).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        patterns.append((negated, re.compile(regex.replace(r"\?", "[^/]"))))
    return patterns


def dockerignored(path: str, patterns) -> bool:
    """Whether ``path`` (or a folder above it) is left out of the build context."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, regex in patterns:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


def dockerfile_copy_sources() -> list[str]:
    sources = []
    for line in (REPO_ROOT / "docker" / "Dockerfile").read_text().splitlines():
        if re.match(r"^(COPY|ADD)\s", line) and "--from" not in line:
            words = [w for w in shlex.split(line)[1:] if not w.startswith("--")]
            sources.extend(words[:-1])  # the last word is the destination
    return sources


def test_dockerignore_keeps_what_the_dockerfile_copies_and_leaves_out_outputs():
    patterns = dockerignore_patterns()
    sources = dockerfile_copy_sources()
    assert {"basisdb", "service", "pyproject.toml"} <= set(sources)
    for source in sources:
        assert (REPO_ROOT / source).exists(), f"docker/Dockerfile copies {source}, which is not in the repository"
        files = [source]
        if (REPO_ROOT / source).is_dir():
            found = (REPO_ROOT / source).rglob("*")
            files += [str(p.relative_to(REPO_ROOT)) for p in found if p.is_file() and "__pycache__" not in p.parts]
        left_out = [f for f in files if dockerignored(f, patterns)]
        assert not left_out, f".dockerignore leaves out {left_out[:5]}, which docker/Dockerfile copies"
    for path in (
        ".git/HEAD",
        "runs/cft/checkpoint.pt",
        "evaluation/x/results.json",
        "basisdb/__pycache__/x.pyc",
        "model.pt",
        "store.h5",
        ".ci-venv/bin/python",
        "tests/test_store.py",
    ):
        assert dockerignored(path, patterns), f"{path} is in the Docker build context"
