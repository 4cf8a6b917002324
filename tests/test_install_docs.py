"""Every install line of README.md and docs/ works as written on a fresh machine: the package index's `ml-dash` is
another project, so each `pip install` names a local path (with extras that pyproject.toml declares), a
requirements file of the repository, or a third-party package."""
import glob
import os
import re
import shlex
import tomllib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def install_commands():
    """(file, line number, the arguments after `pip install`) for each install in a code span or a code block."""
    found = []
    for path in [os.path.join(REPO, "README.md"), *sorted(glob.glob(os.path.join(REPO, "docs", "*.md"))),
                 os.path.join(REPO, "benchmarks", "README.md")]:
        fenced = False
        for number, line in enumerate(open(path, encoding="utf-8"), 1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            spans = [line] if fenced else re.findall(r"`([^`]+)`", line)
            for span in spans:
                for match in re.finditer(r"pip install\s+(.+)", span.split("#")[0]):
                    found.append((os.path.relpath(path, REPO), number, match.group(1).strip()))
    return found


def test_every_install_line_names_an_installable_target():
    extras = set(tomllib.load(open(os.path.join(REPO, "pyproject.toml"), "rb"))["project"]["optional-dependencies"])
    commands = install_commands()
    assert len(commands) >= 10, commands  # the README's and the docs' lines were found
    bad = []
    for where, number, args in commands:
        words = shlex.split(args.rstrip(").;,"))
        i = 0
        while i < len(words):
            word = words[i]
            i += 1
            if word in ("-q", "-e", "--upgrade", "-U"):
                continue
            if word == "-r":
                if not os.path.exists(os.path.join(REPO, words[i])):
                    bad.append(f"{where}:{number}: no {words[i]}")
                i += 1
                continue
            target, _, rest = word.partition("[")
            if target.lower().replace("_", "-") == "ml-dash" or target.startswith("git+"):
                bad.append(f"{where}:{number}: {word!r}: the index's ml-dash is another project; install from a clone")
            elif target.startswith(".") or target.startswith("/"):
                if not os.path.isdir(os.path.join(REPO, target)):
                    bad.append(f"{where}:{number}: {target!r} is not a directory of the repository")
                unknown = {e.strip() for e in rest.rstrip("]").split(",") if e.strip()} - extras
                if unknown:
                    bad.append(f"{where}:{number}: extras {sorted(unknown)} are not in pyproject.toml")
    assert not bad, "\n".join(bad)


def test_readme_says_the_index_name_is_taken():
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    assert "another project" in readme and "pip install -e ." in readme
