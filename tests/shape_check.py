#!/usr/bin/env python3
"""Shape limits of STYLE.md §14: functions <= 70 lines, lines <= 100 columns.

Usage: shape_check.py SOURCE_DIR   (ctest `shape`)

Fails, listing each one, for
  - every function in src/**/*.cc longer than 70 lines, counted from the line of its opening
    brace to the line of its closing brace, both included (lambdas and nested blocks count
    toward the function that holds them);
  - every line longer than 100 columns (characters, not bytes) in src/ and include/.

Functions are found by the code's layout, not by parsing C++ (the layout is clang-format's, so
this is robust enough and needs nothing but python3): a function starts at a line ending with
`{` whose statement began at column 0 (the line itself, or the column-0 line a multi-line
signature started on), that is not a namespace, class, struct, union, enum or extern block and
not an initializer (`name{{`, `x = {`); it ends at the next line that starts with `}` at
column 0.
"""
import pathlib
import re
import sys

function_lines_max = 70
line_columns_max = 100

not_function = re.compile(r"^(?:template\s*<.*>\s*)?(?:namespace|class|struct|union|enum|extern)\b")


def code_of(line):
    """The line without a trailing // comment (good enough: no string holds '//' at a brace)."""
    at = line.find("//")
    return (line if at < 0 else line[:at]).rstrip()


def starts_statement(line):
    """A column-0 line that can begin a declaration: not blank, a comment, a directive or '}'."""
    return bool(line) and not line[0].isspace() and not line.startswith(("//", "/*", "*", "#", "}"))


def function_name(signature):
    if not_function.match(signature) or "(" not in signature:
        return None
    operator = re.search(r"((?:[\w~]+::)*operator\s*(?:\(\)|[^\s(]+))\s*\(", signature)
    if operator:
        return operator.group(1)
    before_paren = signature[: signature.index("(")]
    if "=" in before_paren:
        return None  # `auto f = [](...) {`, `x = f(...) {`: a value, not a function
    match = re.search(r"((?:[\w~]+::)*[\w~]+)\s*$", before_paren)
    return match.group(1) if match else before_paren.strip()


def long_functions(path, lines):
    problems = []
    signature_start = None  # index of the column-0 line the current statement began on
    i = 0
    while i < len(lines):
        line = lines[i]
        code = code_of(line)
        if starts_statement(line):
            signature_start = i
        elif not line.strip() or line.startswith(("//", "#", "}")):
            signature_start = None
        if not code.endswith("{") or signature_start is None:
            if code.endswith((";", "}")):
                signature_start = None
            i += 1
            continue
        start = signature_start
        signature = " ".join(code_of(l).strip() for l in lines[start : i + 1])
        signature_start = None
        name = function_name(signature)
        if name is None:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not lines[end].startswith("}"):
            end += 1
        length = end - i + 1
        if length > function_lines_max:
            problems.append(f"{path}:{start + 1}: function {name} is {length} lines "
                            f"(max {function_lines_max})")
        i = end + 1
    return problems


def long_lines(path, lines):
    return [f"{path}:{n}: line is {len(line)} columns (max {line_columns_max})"
            for n, line in enumerate(lines, 1) if len(line) > line_columns_max]


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    problems = []
    for top in ("src", "include"):
        for path in sorted((root / top).rglob("*")):
            if not path.is_file() or path.suffix not in (".cc", ".h"):
                continue
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            shown = path.relative_to(root)
            if top == "src" and path.suffix == ".cc":
                problems += long_functions(shown, lines)
            problems += long_lines(shown, lines)
    for problem in problems:
        print(problem)
    if problems:
        print(f"shape: {len(problems)} violation(s) of STYLE.md §14")
        return 1
    print("shape: every function <= 70 lines, every line <= 100 columns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
