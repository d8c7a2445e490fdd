"""Every example in README.md and docs/*.md works as written.

* Python blocks (```python) run one by one, each in a fresh interpreter of this venv, from an
  empty directory, with a timeout, against local servers started here the way a user starts
  them: ``ttfast sim`` (local dxLink + REST servers; its REST URL and any non-empty credentials
  are in ``TASTYTRADE_BASE_URL`` / ``TASTYTRADE_CLIENT_SECRET`` / ``TASTYTRADE_REFRESH_TOKEN``)
  and, for a block that reads ``TTFAST_REDIS_URL``, a redis-server (tests/servers.py) that a
  running ``ttfast-worker`` fills. Real ``TASTYTRADE_*`` / ``TTFAST_*`` variables of the calling
  environment are never passed on, so no example can reach a real account.
* A block preceded by ``<!-- no-run: reason -->`` is only compiled (keep such blocks few).
* Shell blocks (```sh) are not executed; every ``ttfast`` / ``ttfast-worker`` / ``python -m`` /
  ``pip`` / ``pytest`` command in them may only use flags its ``--help`` lists, and the repository
  paths they name must exist.
* Fences are python, sh, text or unlabeled; an unlabeled fence is checked like a shell block
  and must not hold Python code (label it python, so that it runs). Relative links between the
  pages point at files that exist.
"""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from tests.servers import Sim, clean_env, stop_cli, ttfast_script, ttfast_sim

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TIMEOUT = 180.0  # per example; generous for a loaded 2-core machine
LANGUAGES = {"python", "sh", "text", ""}
MAX_NO_RUN = 5
FRONT_DOOR = (
    "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/ttfast-worker",
    "bash tests/run.sh",
)

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[^`\s]*)\s*$")
_NO_RUN = re.compile(r"^\s*<!--\s*no-run:(?P<reason>.*?)-->\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    no_run: str | None  # the reason, for blocks marked not runnable

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def parse_blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        indent, start = m["indent"], i
        prev = next((ln for ln in reversed(lines[:i]) if ln.strip()), "")
        marker = _NO_RUN.match(prev)
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            ln = lines[i]
            body.append(ln[len(indent) :] if ln.startswith(indent) else ln.lstrip())
            i += 1
        if i == len(lines):
            raise AssertionError(f"{page.relative_to(ROOT)}:{start + 1}: unclosed code fence")
        i += 1
        blocks.append(
            Block(
                page,
                start + 1,
                m["lang"],
                "\n".join(body) + "\n",
                marker["reason"].strip() if marker else None,
            )
        )
    return blocks


BLOCKS = [b for page in PAGES for b in parse_blocks(page)]
PYTHON = [b for b in BLOCKS if b.lang == "python"]
SHELL = [b for b in BLOCKS if b.lang in ("sh", "")]


# --------------------------------------------------------------------------- local servers


@pytest.fixture(scope="module")
def sim() -> Iterator[Sim]:
    with ttfast_sim() as s:
        yield s


@pytest.fixture(scope="module")
def worker_redis() -> Iterator[str]:
    """A redis-server with a running ``ttfast-worker`` (simulated feed) publishing into it."""
    import redis
    from tests.servers import redis_server

    with redis_server() as srv:
        cmd = [
            *ttfast_script("ttfast-worker", "ttfast.worker"),
            *("--source", "sim", "--redis", srv.url, "--quiet"),
        ]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, env=clean_env()
        )
        try:
            client = redis.Redis.from_url(srv.url)
            deadline = time.monotonic() + 90
            while not client.keys("snapshot:*"):
                assert proc.poll() is None, f"ttfast-worker exited with {proc.returncode}"
                assert time.monotonic() < deadline, "ttfast-worker wrote no snapshot in 90 s"
                time.sleep(0.2)
            client.close()
            yield srv.url
        finally:
            stop_cli(proc)


# --------------------------------------------------------------------------- python blocks


@pytest.mark.parametrize("block", PYTHON, ids=[b.where for b in PYTHON])
def test_python_example_runs(block: Block, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if block.no_run is not None:
        assert block.no_run, f"{block.where}: a no-run marker must say why"
        compile(block.code, block.where, "exec")
        return
    s: Sim = request.getfixturevalue("sim")
    env = clean_env()
    env.update(
        TASTYTRADE_BASE_URL=s.rest_url,
        TASTYTRADE_CLIENT_SECRET="docs-example-secret",
        TASTYTRADE_REFRESH_TOKEN="docs-example-refresh-token",
    )
    if "TTFAST_REDIS_URL" in block.code:
        env["TTFAST_REDIS_URL"] = request.getfixturevalue("worker_redis")
    name = re.sub(r"\W", "_", block.where) + ".py"
    (tmp_path / name).write_text(block.code, encoding="utf-8")
    try:
        proc = subprocess.run(
            [sys.executable, name],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"")[-3000:]
        pytest.fail(f"{block.where}: still running after {TIMEOUT:.0f} s\n{out!r}")
    assert proc.returncode == 0, (
        f"{block.where} failed (exit {proc.returncode}):\n"
        f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-5000:]}"
    )


def test_no_run_blocks_are_few() -> None:
    marked = [b.where for b in PYTHON if b.no_run is not None]
    assert len(marked) <= MAX_NO_RUN, f"too many examples that do not run: {marked}"


# --------------------------------------------------------------------------- shell blocks

_REPO_PATH = re.compile(r"^(bench|tests|src|ext|docs|\.ci)/")
_OPERATORS = {"&&", "||", "|", ";", "&", "(", ")"}


def _commands(code: str) -> Iterator[list[str]]:
    """Simple commands of a shell block: continuation lines joined, comments and `VAR=x` gone."""
    for line in code.replace("\\\n", " ").splitlines():
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        lex.commenters = "#"
        cmd: list[str] = []
        for tok in [*lex, ";"]:
            if tok in _OPERATORS:
                while cmd and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", cmd[0]):
                    cmd.pop(0)
                if cmd:
                    yield cmd
                cmd = []
            else:
                cmd.append(tok)


def _program(tok: str) -> str:
    """`.venv/bin/ttfast-worker` -> `ttfast-worker` (any venv's bin/ is this venv's)."""
    return tok.rsplit("/", 1)[1] if "/bin/" in tok or tok.startswith("bin/") else tok


@cache
def _help(cmd: tuple[str, ...]) -> str:
    proc = subprocess.run(
        [*cmd, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120, env=clean_env()
    )
    assert proc.returncode == 0, f"`{' '.join(cmd)} --help` failed:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def _module_has_options(module: str) -> bool:
    import importlib.util

    spec = importlib.util.find_spec(module)
    assert spec is not None, f"no module {module!r}"
    if spec.origin is None or not spec.origin.endswith(".py"):
        return True
    src = Path(spec.origin)
    if not src.is_relative_to(ROOT) or src.is_relative_to(sys.prefix):
        return True  # installed tools (pip, pytest, venv): ask their --help
    main = src.parent / "__main__.py" if src.name == "__init__.py" else src
    return main.exists() and "argparse" in main.read_text(encoding="utf-8")


def _check_command(tokens: list[str]) -> list[str]:
    """Problems with one command line (empty when fine)."""
    prog, args = _program(tokens[0]), tokens[1:]
    if re.fullmatch(r"python(3(\.\d+)?)?", prog) and args[:2] in (
        ["-m", "ttfast.cli"],
        ["-m", "ttfast.worker"],
    ):
        prog, args = ("ttfast" if args[1] == "ttfast.cli" else "ttfast-worker"), args[2:]
    help_cmd: tuple[str, ...] | None = None
    if prog == "ttfast":
        sub = args[:1] if args and not args[0].startswith("-") else []
        help_cmd = (*ttfast_script("ttfast", "ttfast.cli"), *sub)
        args = args[len(sub) :]
    elif prog == "ttfast-worker":
        help_cmd = tuple(ttfast_script("ttfast-worker", "ttfast.worker"))
    elif prog in ("pip", "pip3"):
        help_cmd = (sys.executable, "-m", "pip", *args[:1])
        args = args[1:]
    elif prog == "pytest":
        help_cmd = (sys.executable, "-m", "pytest")
    elif re.fullmatch(r"python(3(\.\d+)?)?", prog):
        if len(args) < 2 or args[0] != "-m":
            return []
        module, args = args[1], args[2:]
        if module == "pip" and args:
            module_cmd: tuple[str, ...] = (sys.executable, "-m", "pip", args[0])
            args = args[1:]
        else:
            module_cmd = (sys.executable, "-m", module)
        flags = [a for a in args if a.startswith("-")]
        if _module_has_options(module):
            help_cmd = module_cmd
        elif flags:
            return [f"`python -m {module}` takes no options, got {flags}"]
    elif prog == "bash":
        return [] if args and (ROOT / args[0]).is_file() else [f"no script {args[:1]}"]
    else:
        return []  # not ours (redis-server, git, curl ...)
    problems = []
    for a in args:
        path = a.split("::", 1)[0]
        if _REPO_PATH.match(path) and not (ROOT / path).exists():
            problems.append(f"{path} does not exist")
    if help_cmd is None:
        return problems
    text = _help(help_cmd)
    for a in args:
        if not a.startswith("-") or re.fullmatch(r"-\d[\d.]*", a) or a == "-":
            continue
        flag = a.split("=", 1)[0] if a.startswith("--") else a[:2]
        if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text):
            problems.append(f"{flag} is not an option of `{' '.join(help_cmd[-2:])}`")
    return problems


@pytest.mark.parametrize("block", SHELL, ids=[b.where for b in SHELL])
def test_shell_commands_parse(block: Block) -> None:
    problems = []
    for cmd in _commands(block.code):
        problems += [f"{' '.join(cmd)}: {p}" for p in _check_command(cmd)]
    assert not problems, f"{block.where}:\n" + "\n".join(problems)


# --------------------------------------------------------------------------- the pages


def _looks_like_python(code: str) -> bool:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    kinds = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.Call)
    return any(isinstance(node, kinds) for node in ast.walk(tree))


def test_fences_name_a_known_language() -> None:
    bad = [f"{b.where} ({b.lang})" for b in BLOCKS if b.lang not in LANGUAGES]
    assert not bad, f"code fences must be one of {sorted(LANGUAGES)}: {bad}"
    hidden = [b.where for b in BLOCKS if b.lang == "" and _looks_like_python(b.code)]
    assert not hidden, f"unlabeled fences holding Python (label them python): {hidden}"


def test_front_door_shows_the_two_commands() -> None:
    readme = [b.code for b in parse_blocks(ROOT / "README.md") if b.lang == "sh"]
    for command in FRONT_DOOR:
        assert any(command in code.splitlines() for code in readme), command
    assert "bash tests/run.sh" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def test_relative_links_resolve() -> None:
    broken = []
    for page in PAGES:
        for m in _LINK.finditer(page.read_text(encoding="utf-8")):
            target = m["target"].split("#", 1)[0]
            if not target or re.match(r"^[a-z]+:", target):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {m['target']}")
    assert not broken, f"links to missing files: {broken}"


def test_blocks_were_found() -> None:
    assert ROOT / "docs" / "index.md" in PAGES, "docs/index.md is missing"
    assert len(PYTHON) >= 10 and len(SHELL) >= 5, (len(PYTHON), len(SHELL))
