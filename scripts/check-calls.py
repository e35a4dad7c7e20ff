#!/usr/bin/env python3
"""check-calls.py — no call loop between the files of one folder of src/ (docs/ARCHITECTURE.md, "Layers").

Reads the symbols each object file defines and uses (nm), draws an edge a -> b when a file of
a folder calls a function (or reads a variable) defined in another file of the same folder, and
fails, naming every loop and its edges, when those edges form a cycle.
  scripts/check-calls.py BUILD_DIR [FOLDER...]     (default folders: every folder of src/)
  scripts/check-calls.py --self-test               (shows that a loop is caught)
"""
import collections
import os
import subprocess
import sys


def graph(build, folders):
    defs, uses = {}, collections.defaultdict(set)
    for d in folders:
        odir = os.path.join(build, "src", d)
        if not os.path.isdir(odir):
            continue
        for f in sorted(os.listdir(odir)):
            if not f.endswith(".o"):
                continue
            name = f"{d}/{f[:-2]}.c"
            out = subprocess.run(["nm", os.path.join(odir, f)], capture_output=True,
                                 text=True, check=True).stdout
            for line in out.splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[1] in "TDBRC":
                    defs[parts[2]] = name
                elif len(parts) == 2 and parts[0] == "U":
                    uses[name].add(parts[1])
    edges = collections.defaultdict(dict)
    for user, syms in uses.items():
        for s in sorted(syms):
            owner = defs.get(s)
            if owner and owner != user and owner.split("/")[0] == user.split("/")[0]:
                edges[user].setdefault(owner, s)
    return edges


def loops(edges):
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    nodes = sorted(set(edges) | {b for a in edges for b in edges[a]})

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in nodes:
        if v not in index:
            visit(v)
    return out


def self_test():
    """Two files of one folder that call each other must be reported, naming both calls."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        odir = os.path.join(tmp, "src", "x")
        os.makedirs(odir)
        files = {"a": "void b_fn(void); void a_fn(void); void a_fn(void) { b_fn(); }\n",
                 "b": "void a_fn(void); void b_fn(void); void b_fn(void) { a_fn(); }\n",
                 "c": "void a_fn(void); void c_fn(void); void c_fn(void) { a_fn(); }\n"}
        for name, text in files.items():
            with open(os.path.join(tmp, name + ".c"), "w") as f:
                f.write(text)
            subprocess.run([os.environ.get("CC", "cc"), "-c", "-o", os.path.join(odir, name + ".o"),
                            os.path.join(tmp, name + ".c")], check=True)
        found = loops(graph(tmp, ["x"]))
        if found != [["x/a.c", "x/b.c"]]:
            print(f"check-calls self-test: want the loop x/a.c <-> x/b.c only, got {found}", file=sys.stderr)
            return 1
        os.remove(os.path.join(odir, "b.o"))
        if loops(graph(tmp, ["x"])):
            print("check-calls self-test: a loop reported where there is none", file=sys.stderr)
            return 1
    print("check-calls self-test: a call loop is caught")
    return 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    if len(sys.argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    build = sys.argv[1]
    folders = sys.argv[2:] or sorted(os.listdir(os.path.join(build, "src")))
    edges = graph(build, [f for f in folders if os.path.isdir(os.path.join(build, "src", f))])
    bad = loops(edges)
    for comp in bad:
        print(f"check-calls: a call loop between {len(comp)} files: {', '.join('src/' + c for c in comp)}",
              file=sys.stderr)
        for a in comp:
            for b, sym in sorted(edges.get(a, {}).items()):
                if b in comp:
                    print(f"  src/{a} -> src/{b} (calls {sym})", file=sys.stderr)
    if bad:
        print("HINT: a lower file returns a result its caller acts on, instead of calling back up "
              "(docs/ARCHITECTURE.md, \"Layers\")", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
