#!/usr/bin/env python3
"""Goldens for ember's WordPiece tokenizer: HF BertTokenizer ids for every line of
tests/data/tokenizer/corpus.txt under several option sets, pairs with truncation and padded
batches, written to tests/data/tokenizer/goldens.json.

ember follows transformers 5's BertTokenizer (the Rust `tokenizers` library, what
sentence-transformers runs). The pure-Python "slow" BertTokenizer of transformers 4.x is run
too, in a second environment (--slow-python), and every case where it disagrees is recorded
next to the fast result; tests assert ember == fast everywhere.

    python3 -m venv /tmp/tok5 && /tmp/tok5/bin/pip install -r tools/requirements-tokenizer.txt
    python3 -m venv /tmp/tok4 && /tmp/tok4/bin/pip install -r tools/requirements-tokenizer-slow.txt
    /tmp/tok5/bin/python tools/make_tokenizer_goldens.py --slow-python /tmp/tok4/bin/python

corpus.txt is UTF-8, one case per line ('\\n' only); "\\u{XXXX}" stands for that code point
(used for invisible, control and separator characters and for the backslash).

--audit compares, for every code point, the character classes of tokenizers' BertNormalizer /
BertPreTokenizer (whose category tables are older than Unicode 9) with utf8proc's (what ember
uses) and prints where they disagree; the generator refuses corpus lines holding such code
points, since there ember follows utf8proc by design (tests/data/tokenizer/README.md).
"""
import argparse
import ctypes
import ctypes.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "tokenizer")

# name -> tokenizer_config.json options (the rest is bert-base-uncased's config)
OPTION_SETS = [
    ("uncased", {"do_lower_case": True}),
    ("lower_keep_accents", {"do_lower_case": True, "strip_accents": False}),
    ("cased", {"do_lower_case": False}),
    ("cased_strip_accents", {"do_lower_case": False, "strip_accents": True}),
    ("no_chinese_chars", {"do_lower_case": True, "tokenize_chinese_chars": False}),
]
PAIR_MAX_LENGTHS = [3, 4, 5, 6, 7, 8, 9, 10, 12, 16, 24, 32, 64]
BATCH_MAX_LENGTHS = [2, 3, 5, 8, 16, 32, 128]


def decode_line(s):
    return re.sub(r"\\u\{([0-9A-Fa-f]{1,6})\}", lambda m: chr(int(m.group(1), 16)), s)


def read_corpus():
    with open(os.path.join(DATA, "corpus.txt"), "rb") as f:
        raw = f.read().decode("utf-8")
    assert raw.endswith("\n"), "corpus.txt must end with a newline"
    return [decode_line(l) for l in raw[:-1].split("\n")]


def make_dirs(tmp):
    dirs = {}
    for name, opts in OPTION_SETS:
        d = os.path.join(tmp, name)
        os.makedirs(d)
        shutil.copy(os.path.join(DATA, "vocab.txt"), os.path.join(d, "vocab.txt"))
        cfg = dict(opts)
        cfg.update({"model_max_length": 512, "tokenizer_class": "BertTokenizer"})
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump(cfg, f, sort_keys=True)
        dirs[name] = d
    return dirs


def cases(lines):
    """Pairs and batches, chosen deterministically from lines an encode call can take."""
    ok = [i for i, l in enumerate(lines) if "\0" not in l]
    pairs = []
    for k in range(78):
        a = ok[(7 * k + 3) % len(ok)]
        b = ok[(13 * k + 5) % len(ok)] if k % 6 else a  # every 6th pair: equal halves (ties)
        pairs.append({"options": OPTION_SETS[k % 2][0], "a": a, "b": b,
                      "max_length": PAIR_MAX_LENGTHS[k % len(PAIR_MAX_LENGTHS)]})
    batches = []
    for k in range(14):
        idx = [ok[(11 * k + 17 * j + 1) % len(ok)] for j in range(1 + k % 6)]
        batches.append({"options": OPTION_SETS[k % len(OPTION_SETS)][0], "lines": idx,
                        "max_length": BATCH_MAX_LENGTHS[k % len(BATCH_MAX_LENGTHS)]})
    return pairs, batches


def run_tokenizers(dirs, lines, pairs, batches, expect_fast):
    """Every id this environment's BertTokenizer gives for the cases."""
    from transformers import BertTokenizer
    toks = {name: BertTokenizer.from_pretrained(d) for name, d in dirs.items()}
    for t in toks.values():
        assert t.is_fast == expect_fast, "wrong transformers version for this role"
    out = {"singles": {}, "pairs": [], "batches": []}
    for name, t in toks.items():
        out["singles"][name] = [t(l, add_special_tokens=False)["input_ids"] for l in lines]
    for p in pairs:
        e = toks[p["options"]](lines[p["a"]], lines[p["b"]], truncation=True,
                               max_length=p["max_length"])
        out["pairs"].append({"input_ids": e["input_ids"], "token_type_ids": e["token_type_ids"]})
    for b in batches:
        e = toks[b["options"]]([lines[i] for i in b["lines"]], padding=True, truncation=True,
                               max_length=b["max_length"])
        out["batches"].append({k: e[k] for k in ("input_ids", "attention_mask", "token_type_ids")})
    return out


# ---- Unicode audit: tokenizers' classes vs utf8proc's -------------------------------------

def utf8proc():
    lib = ctypes.util.find_library("utf8proc") or "libutf8proc.so.2"
    u = ctypes.CDLL(lib)
    u.utf8proc_category.restype = ctypes.c_int
    u.utf8proc_category.argtypes = [ctypes.c_int32]
    u.utf8proc_tolower.restype = ctypes.c_int32
    u.utf8proc_tolower.argtypes = [ctypes.c_int32]
    u.utf8proc_decompose_char.restype = ctypes.c_ssize_t
    u.utf8proc_decompose_char.argtypes = [ctypes.c_int32, ctypes.POINTER(ctypes.c_int32),
                                          ctypes.c_ssize_t, ctypes.c_int,
                                          ctypes.POINTER(ctypes.c_int)]
    return u


# utf8proc_category_t order
CATS = ["Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd",
        "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs",
        "Co"]


def ember_class(u, cp):
    """What ember's rules (host/tokenizer.c) make of one code point, before WordPiece."""
    cat = CATS[u.utf8proc_category(cp)]
    if cp in (0, 0xFFFD) or (cat in ("Cc", "Cf", "Co", "Cs") and cp not in (9, 10, 13)):
        return "removed"
    if cat in ("Zs", "Zl", "Zp") or 9 <= cp <= 13 or cp == 0x85:
        return "space"
    if cat[0] == "P" or 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return "punct"
    return "word"


def audit():
    """{code point: why} where tokenizers and utf8proc-based rules disagree."""
    from tokenizers import normalizers, pre_tokenizers
    u = utf8proc()
    clean = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False,
                                       strip_accents=False, lowercase=False)
    strip = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False,
                                       strip_accents=True, lowercase=False)
    lower = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False,
                                       strip_accents=False, lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    buf = (ctypes.c_int32 * 32)()
    bound = ctypes.c_int(0)
    bad = {}
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        s = clean.normalize_str("a" + c + "a")
        if s == "aa":
            fast = "removed"
        elif s == "a a":
            fast = "space"
        else:
            fast = "punct" if [w for w, _ in pre.pre_tokenize_str(s)] == ["a", c, "a"] else "word"
        mine = ember_class(u, cp)
        if fast != mine:
            bad[cp] = "class: tokenizers %s, utf8proc %s (%s)" % (fast, mine,
                                                                  CATS[u.utf8proc_category(cp)])
            continue
        n = u.utf8proc_decompose_char(cp, buf, 32, 1 << 4, ctypes.byref(bound))  # DECOMPOSE
        nfd = "".join(chr(buf[i]) for i in range(n) if u.utf8proc_category(buf[i]) != 6)  # Mn
        if strip.normalize_str(c) != nfd:
            bad[cp] = "strip accents (NFD, drop Mn)"
            continue
        low = "i\u0307" if cp == 0x130 else chr(u.utf8proc_tolower(cp))
        if lower.normalize_str(c) != low:
            bad[cp] = "lower case"
    return bad


def print_audit(bad):
    groups = {}
    for cp, why in sorted(bad.items()):
        groups.setdefault(why, []).append(cp)
    for why, cps in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        head = " ".join("U+%04X" % c for c in cps[:8])
        print("%6d  %-55s %s%s" % (len(cps), why, head, " ..." if len(cps) > 8 else ""))
    print("%6d  code points in all" % len(bad))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slow-python", default=os.environ.get("EMBER_SLOW_PYTHON"),
                    help="a python with transformers 4.x (requirements-tokenizer-slow.txt)")
    ap.add_argument("--audit", action="store_true", help="print the Unicode audit and exit")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:  # run by --slow-python: same cases, slow tokenizer
        req = json.load(sys.stdin)
        json.dump(run_tokenizers(req["dirs"], req["lines"], req["pairs"], req["batches"], False),
                  sys.stdout)
        return
    if args.audit:
        print_audit(audit())
        return
    if not args.slow_python:
        sys.exit("--slow-python (or EMBER_SLOW_PYTHON) is required: a python with "
                 "tools/requirements-tokenizer-slow.txt installed")

    import tokenizers
    import transformers
    lines = read_corpus()
    bad = audit()
    for n, l in enumerate(lines, 1):
        for c in l:
            if ord(c) in bad:
                sys.exit("corpus.txt line %d: U+%04X is a code point where tokenizers and utf8proc "
                         "disagree (%s); leave it out of the corpus" % (n, ord(c), bad[ord(c)]))
    pairs, batches = cases(lines)
    with tempfile.TemporaryDirectory() as tmp:
        dirs = make_dirs(tmp)
        fast = run_tokenizers(dirs, lines, pairs, batches, True)
        req = json.dumps({"dirs": dirs, "lines": lines, "pairs": pairs, "batches": batches})
        res = subprocess.run([args.slow_python, os.path.abspath(__file__), "--worker"],
                             input=req, capture_output=True, text=True, check=True)
        slow = json.loads(res.stdout)
        slow_version = subprocess.run(
            [args.slow_python, "-c", "import transformers; print(transformers.__version__)"],
            capture_output=True, text=True, check=True).stdout.strip()

    option_sets, report = [], []
    for name, opts in OPTION_SETS:
        diffs = []
        for i, (f, s) in enumerate(zip(fast["singles"][name], slow["singles"][name])):
            if f != s:
                diffs.append({"line": i + 1, "slow": s})
                report.append("%s line %d: %r fast %s slow %s" % (name, i + 1, lines[i][:60], f, s))
        option_sets.append({"name": name, "tokenizer_config": opts, "ids": fast["singles"][name],
                            "slow_differs": diffs})
    for p, f, s in zip(pairs, fast["pairs"], slow["pairs"]):
        p.update(f)
        if f["input_ids"] != s["input_ids"]:
            p["slow_input_ids"] = s["input_ids"]
            report.append("pair lines %d+%d max_length %d: fast %s slow %s" % (
                p["a"] + 1, p["b"] + 1, p["max_length"], f["input_ids"], s["input_ids"]))
    for b, f, s in zip(batches, fast["batches"], slow["batches"]):
        b.update(f)
        if f["input_ids"] != s["input_ids"]:
            b["slow_input_ids"] = s["input_ids"]
            report.append("batch lines %s max_length %d differs" % (b["lines"], b["max_length"]))

    golden = {
        "generator": "tools/make_tokenizer_goldens.py",
        "reference": "transformers %s BertTokenizer (tokenizers %s)" % (
            transformers.__version__, tokenizers.__version__),
        "slow_reference": "transformers %s BertTokenizer (pure Python)" % slow_version,
        "vocab": "vocab.txt",
        "lines": lines,
        "option_sets": option_sets,
        "pairs": pairs,
        "batches": batches,
    }
    path = os.path.join(DATA, "goldens.json")
    with open(path, "w") as f:
        f.write("{\n")
        keys = list(golden)
        for k in keys:
            v = golden[k]
            if isinstance(v, list):  # one element per line keeps diffs readable
                f.write(" %s: [\n" % json.dumps(k))
                f.write(",\n".join("  " + json.dumps(x, sort_keys=True) for x in v))
                f.write("\n ]")
            else:
                f.write(" %s: %s" % (json.dumps(k), json.dumps(v)))
            f.write(",\n" if k != keys[-1] else "\n")
        f.write("}\n")
    print("%s: %d lines x %d option sets, %d pairs, %d batches; %d slow/fast disagreements" % (
        os.path.relpath(path, ROOT), len(lines), len(OPTION_SETS), len(pairs), len(batches),
        len(report)))
    for r in report:
        print("  " + r)


if __name__ == "__main__":
    main()
