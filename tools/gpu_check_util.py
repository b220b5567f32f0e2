#!/usr/bin/env python3
"""Helpers of tools/gpu-check.sh (standard library only: they run on the bare GPU machine).

  sass-report --build-log LOG --cuobjdump BIN --out MD FILE...
      registers, stack and spills per kernel (from the build's `ptxas -v` lines) and, from
      `cuobjdump --dump-sass`, HMMA / HGMMA / local-memory instruction counts per kernel;
      checks that the fatbins hold sm_90a SASS (--arch) and nothing else.
  deb-extract DEB DEST NAME...
      copy the files named NAME (a shared library's soname: symlinks inside the package are
      followed) out of a .deb into DEST, without dpkg: ar + tar in Python.
  gtest-verdict --expected FILE --log LOG [--allow FILE] [--gpu 0|1]
      judge one gtest run of the GPU tests: every expected test reported; on a GPU none
      failed and none skipped unless allowed; without one, all skipped for want of a device.
      Exit 0 pass, 1 fail, 3 no GPU (all skipped as expected).
  gtest-remaining --expected FILE --log LOG
      the expected tests that a crashed run never started.
  sanitizer-verdict LOG RC
      PASS / FAIL / TIMEOUT / SKIP (the tool could not run: its message) of one
      compute-sanitizer run.
  selftest
      the parsers above on canned outputs.
"""
import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile

# ---- sass-report ---------------------------------------------------------------------------


def parse_ptxas(text):
    """{mangled: {"arch", "regs", "stack", "spill_st", "spill_ld", "smem"}} from `ptxas -v`."""
    out, cur, props = {}, None, None
    for line in text.splitlines():
        m = re.search(r"Compiling entry function '([^']+)' for '(sm_\w+)'", line)
        if m:
            cur = m.group(1)
            out.setdefault(cur, {})["arch"] = m.group(2)
            continue
        m = re.search(r"Function properties for (\S+)", line)
        if m:
            props = m.group(1)
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and props:
            d = out.setdefault(props, {})
            d["stack"], d["spill_st"], d["spill_ld"] = (int(x) for x in m.groups())
            props = None
            continue
        m = re.search(r"Used (\d+) registers", line)
        if m and cur:
            out[cur]["regs"] = int(m.group(1))
            s = re.search(r"(\d+) bytes smem", line)
            if s:
                out[cur]["smem"] = int(s.group(1))
    return out


def parse_sass(text):
    """{mangled: {"HMMA", "HGMMA", "LDL/STL", "instr"}} from `cuobjdump --dump-sass`."""
    out, cur = {}, None
    for line in text.splitlines():
        m = re.match(r"\s*Function : (\S+)", line)
        if m:
            cur = out.setdefault(m.group(1), {"HMMA": 0, "HGMMA": 0, "LDL/STL": 0, "instr": 0})
            continue
        if cur is None:
            continue
        m = re.match(r"\s*/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)", line)
        if not m:
            continue
        op = m.group(1)
        cur["instr"] += 1
        if op == "HMMA":
            cur["HMMA"] += 1
        elif op == "HGMMA":
            cur["HGMMA"] += 1
        elif op in ("LDL", "STL"):
            cur["LDL/STL"] += 1
    return out


def demangle(names):
    if not names or not shutil.which("c++filt"):
        return {n: n for n in names}
    p = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    lines = p.stdout.splitlines()
    return dict(zip(names, lines)) if len(lines) == len(names) else {n: n for n in names}


def cmd_sass_report(a):
    ptx = parse_ptxas(open(a.build_log, errors="replace").read())
    problems, sass, elves = [], {}, []
    for f in a.files:
        p = subprocess.run([a.cuobjdump, "--list-elf", f], capture_output=True, text=True)
        names = [ln.split(":", 1)[1].strip() for ln in p.stdout.splitlines() if ln.startswith("ELF file")]
        if p.returncode != 0:
            problems.append("%s: cuobjdump --list-elf failed: %s" % (f, p.stderr.strip()[-200:]))
            continue
        if not names:
            continue  # a file without device code
        elves += names
        other = [n for n in names if not n.endswith(".%s.cubin" % a.arch)]
        if other and a.arch != "any":
            problems.append("%s holds SASS for other targets: %s" % (os.path.basename(f), ", ".join(other)))
        p = subprocess.run([a.cuobjdump, "--dump-sass", f], capture_output=True, text=True)
        if p.returncode != 0:
            problems.append("%s: cuobjdump --dump-sass failed: %s" % (f, p.stderr.strip()[-200:]))
        sass.update(parse_sass(p.stdout))
    if not ptx:
        problems.append("no `ptxas -v` lines in %s (were the kernels compiled?)" % a.build_log)
    if not elves:
        problems.append("no SASS in " + ", ".join(os.path.basename(f) for f in a.files))
    names = sorted(set(ptx) | set(sass))
    dm = demangle(names)
    rows = []
    for n in names:
        r, s = ptx.get(n, {}), sass.get(n, {})
        rows.append((dm[n], r.get("regs", "?"), r.get("stack", "?"), r.get("spill_st", "?"),
                     r.get("spill_ld", "?"), s.get("HMMA", "?"), s.get("HGMMA", "?"),
                     s.get("LDL/STL", "?"), s.get("instr", "?")))
    spills = [r for r in rows if isinstance(r[3], int) and (r[3] or r[4])]
    mma = [r for r in rows if isinstance(r[5], int) and r[5]]
    gmma = [r for r in rows if isinstance(r[6], int) and r[6]]
    summary = ("%d kernels, %s SASS in %d cubins; %d with spills, %d with HMMA, %d with HGMMA; "
               "max %s registers" % (len(rows), a.arch, len(elves), len(spills), len(mma), len(gmma),
                                     max([r[1] for r in rows if isinstance(r[1], int)], default="?")))
    with open(a.out, "w") as f:
        f.write("# ember kernels: ptxas and SASS report (%s)\n\n" % a.arch)
        f.write("From the build's `-Xptxas -v` lines and `cuobjdump --dump-sass` of the carried "
                "binaries.\n\n%s\n\n" % summary)
        for p in problems:
            f.write("- **problem**: %s\n" % p)
        f.write("\n| kernel | registers | stack B | spill st B | spill ld B | HMMA | HGMMA | "
                "LDL/STL | SASS instr |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
        for r in rows:
            f.write("| `%s` | %s |\n" % (r[0].replace("|", "\\|"), " | ".join(str(x) for x in r[1:])))
        f.write("\ncubins: %s\n" % ", ".join(elves))
    print(summary)
    for p in problems:
        print("problem: " + p)
    return 1 if problems else 0


# ---- deb-extract ---------------------------------------------------------------------------


def ar_members(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"!<arch>\n":
        raise ValueError("%s is not an ar archive" % path)
    pos, out = 8, {}
    while pos + 60 <= len(data):
        hdr = data[pos:pos + 60]
        name = hdr[:16].decode().strip().rstrip("/")
        size = int(hdr[48:58].decode().strip())
        out[name] = data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)
    return out


def open_data_tar(deb):
    members = ar_members(deb)
    name = next((n for n in members if n.startswith("data.tar")), None)
    if name is None:
        raise ValueError("%s has no data.tar member" % deb)
    blob = members[name]
    if name.endswith(".zst"):
        if not shutil.which("zstd"):
            raise ValueError("%s: data.tar.zst needs the zstd program" % deb)
        blob = subprocess.run(["zstd", "-dc"], input=blob, capture_output=True, check=True).stdout
        return tarfile.open(fileobj=io.BytesIO(blob), mode="r:")
    return tarfile.open(fileobj=io.BytesIO(blob), mode="r:*")


def cmd_xz(a):
    """SRC -> DST, xz-compressed (or with -d decompressed): gpu-check.sh's carry where no xz."""
    import lzma
    src = lzma.open(a.src) if a.decompress else open(a.src, "rb")
    dst = open(a.dst, "wb") if a.decompress else lzma.open(a.dst, "wb", preset=6)
    with src, dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    return 0


def cmd_deb_extract(a):
    tf = open_data_tar(a.deb)
    by_path = {os.path.normpath(m.name.lstrip("./")): m for m in tf.getmembers()}
    os.makedirs(a.dest, exist_ok=True)
    missing = []
    for want in a.names:
        hits = [p for p in by_path if os.path.basename(p) == want]
        if not hits:
            missing.append(want)
            continue
        m = by_path[hits[0]]
        for _ in range(8):  # follow symlinks inside the package
            if not m.issym():
                break
            target = os.path.normpath(os.path.join(os.path.dirname(hits[0]), m.linkname))
            hits = [target]
            m = by_path.get(target)
            if m is None:
                break
        if m is None or not m.isfile():
            missing.append(want)
            continue
        with open(os.path.join(a.dest, want), "wb") as out:
            out.write(tf.extractfile(m).read())
        os.chmod(os.path.join(a.dest, want), 0o755)
        print("%s: %s -> %s" % (os.path.basename(a.deb), hits[0], os.path.join(a.dest, want)))
    if missing:
        print("deb-extract: %s not in %s" % (", ".join(missing), a.deb), file=sys.stderr)
        return 1
    return 0


# ---- gtest-verdict -------------------------------------------------------------------------

RESULT_RE = re.compile(r"^\[\s+(OK|FAILED|SKIPPED)\s+\] (\S+?)(?:, where .*)? \(\d+ ms\)$")


def parse_gtest(text):
    """[(name, result, message)] in run order; result None for a test that never finished."""
    runs, cur, msg = [], None, []
    for line in text.splitlines():
        if line.startswith("[ RUN      ] "):
            if cur is not None:
                runs.append((cur, None, "\n".join(msg)))
            cur, msg = line[13:].strip(), []
            continue
        m = RESULT_RE.match(line)
        if m and cur is not None and m.group(2) == cur:
            runs.append((cur, m.group(1), "\n".join(msg)))
            cur, msg = None, []
            continue
        if cur is not None:
            msg.append(line)
    if cur is not None:
        runs.append((cur, None, "\n".join(msg)))
    return runs


def read_allow(path):
    """name -> (text the skip message must contain, why it may skip)."""
    allow = {}
    if path and os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line and not line.startswith("#"):
                parts = [p.strip() for p in line.split("|")]
                if len(parts) == 3:
                    allow[parts[0]] = (parts[1], parts[2])
    return allow


def gtest_verdict(expected, log, allow, gpu):
    """(exit code, one-line detail, report lines)."""
    runs = parse_gtest(log)
    got = {n: (r, m) for n, r, m in runs}
    missing = [n for n in expected if n not in got]
    extra = [n for n in got if n not in set(expected)]
    crashed = [n for n, r, _ in runs if r is None]
    failed = [n for n, r, _ in runs if r == "FAILED"]
    passed = [n for n, r, _ in runs if r == "OK"]
    skipped = [(n, m) for n, r, m in runs if r == "SKIPPED"]
    report, bad = [], []
    if crashed:
        bad.append("crashed in %s" % crashed[0])
    if missing:
        bad.append("%d of %d GPU tests did not report (first: %s)" % (len(missing), len(expected), missing[0]))
    if extra:
        bad.append("%d tests ran that are not GPU tests (first: %s)" % (len(extra), extra[0]))
    if failed:
        bad.append("%d failed" % len(failed))
    allowed_skips, bad_skips = [], []
    if gpu:
        for n, m in skipped:
            rule = allow.get(n)
            if rule and rule[0] in m:
                allowed_skips.append((n, rule[1]))
            else:
                bad_skips.append("%s (%s)" % (n, (m.strip().splitlines() or ["?"])[-1]))
        if bad_skips:
            bad.append("%d skipped on a GPU machine (first: %s)" % (len(bad_skips), bad_skips[0]))
    else:
        not_device = [n for n, m in skipped if "no CUDA device" not in m]
        if passed or not_device:
            bad.append("without a GPU, %d passed and %d skipped for another reason"
                       % (len(passed), len(not_device)))
    for n in failed:
        report.append("FAILED  %s" % n)
    for n in crashed:
        report.append("CRASHED %s" % n)
    for n in missing:
        report.append("MISSING %s" % n)
    for n, why in allowed_skips:
        report.append("SKIPPED %s (allowed: %s)" % (n, why))
    for n in bad_skips:
        report.append("SKIPPED %s ON A GPU MACHINE" % n)
    counts = "%d GPU tests selected, %d ran: %d passed, %d failed, %d skipped" % (
        len(expected), len(runs), len(passed), len(failed), len(skipped))
    if allowed_skips:
        counts += " (%d allowed: data that cannot travel)" % len(allowed_skips)
    if bad:
        return 1, counts + "; " + "; ".join(bad[:3]), report
    if not gpu:
        return 3, counts + " (no CUDA device)", report
    return 0, counts, report


def cmd_gtest_verdict(a):
    expected = [ln.strip() for ln in open(a.expected) if ln.strip()]
    log = open(a.log, errors="replace").read()
    code, detail, report = gtest_verdict(expected, log, read_allow(a.allow), a.gpu == 1)
    for line in report:
        print(line)
    print(detail)
    return code


def cmd_gtest_remaining(a):
    """The expected tests that have not started yet (after a crash), one a line."""
    expected = [ln.strip() for ln in open(a.expected) if ln.strip()]
    started = {n for n, _, _ in parse_gtest(open(a.log, errors="replace").read())}
    for n in expected:
        if n not in started:
            print(n)
    return 0


# ---- sanitizer-verdict ---------------------------------------------------------------------


def sanitizer_verdict(text, rc, ran):
    """(PASS|FAIL|TIMEOUT|SKIP, detail) of one run; `ran`: the program's own output is there
    (a sanitizer that cannot start it may still print a clean summary and exit 0)."""
    if rc in (124, 137):
        return "TIMEOUT", "stopped at its time limit"
    summ = re.findall(r"========= (?:ERROR SUMMARY: (\d+) errors?|RACECHECK SUMMARY: (\d+) hazards? "
                      r"displayed \((\d+) errors?, (\d+) warnings?\))", text)
    errors = sum(int(e or 0) + int(r_err or 0) for e, _, r_err, _ in summ)
    warnings = sum(int(w or 0) for _, _, _, w in summ)
    if errors:
        return "FAIL", "%d errors reported" % errors
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    tool = [ln[10:].strip() for ln in lines
            if re.match(r"========= (Error|Internal Sanitizer Error|.*not supported)", ln)]
    if tool:
        return "SKIP", "the tool could not run the program: " + tool[0][:200]
    if not summ:
        return "SKIP", "the tool could not run the program: " + (lines or ["no output, exit %d" % rc])[0][:200]
    if rc != 0:
        last = [ln for ln in lines if not ln.startswith("=========")]
        return "FAIL", "no sanitizer errors, but the program failed (exit %d): %s" % (
            rc, (last or ["?"])[-1][:160])
    if not ran:  # a clean summary and exit 0, but the program never ran
        return "SKIP", "the tool reported nothing and the program did not run under it"
    return "PASS", "0 errors" + (", %d race warnings" % warnings if warnings else "")


def cmd_sanitizer_verdict(a):
    verdict, detail = sanitizer_verdict(open(a.log, errors="replace").read(), a.rc, a.ran == 1)
    print("%s %s" % (verdict, detail))
    return 0


# ---- selftest ------------------------------------------------------------------------------


def cmd_selftest(a):
    log = "\n".join([
        "[ RUN      ] CudaOps.A", "[       OK ] CudaOps.A (3 ms)",
        "[ RUN      ] Cases/AttentionPadded.MatchesReference/s7", "x.cc:9: Skipped", "no CUDA device",
        "[  SKIPPED ] Cases/AttentionPadded.MatchesReference/s7 (0 ms)",
        "[ RUN      ] CudaEmbed.M", "e.cc:1: Skipped", "/x/.pydeps/all-MiniLM-L6-v2 absent",
        "[  SKIPPED ] CudaEmbed.M (0 ms)",
        "[ RUN      ] Random/CudaModel.X/3", "boom",
        "[  FAILED  ] Random/CudaModel.X/3, where GetParam() = 4-byte object <01> (5 ms)",
        "[ RUN      ] CudaGraphs.Y"])
    runs = parse_gtest(log)
    import tempfile
    with tempfile.TemporaryDirectory() as d:  # the carry's xz fallback, both ways
        raw = os.urandom(3000) * 3
        src, packed, back = (os.path.join(d, n) for n in ("f", "f.xz", "g"))
        with open(src, "wb") as f:
            f.write(raw)
        cmd_xz(argparse.Namespace(src=src, dst=packed, decompress=False))
        cmd_xz(argparse.Namespace(src=packed, dst=back, decompress=True))
        assert open(back, "rb").read() == raw and os.path.getsize(packed) < len(raw)
    assert [r[1] for r in runs] == ["OK", "SKIPPED", "SKIPPED", "FAILED", None], runs
    exp = ["CudaOps.A", "Cases/AttentionPadded.MatchesReference/s7", "CudaEmbed.M",
           "Random/CudaModel.X/3", "CudaGraphs.Y"]
    allow = {"CudaEmbed.M": ("all-MiniLM-L6-v2", "90 MB")}
    code, detail, _ = gtest_verdict(exp, log, allow, True)
    assert code == 1 and "crashed in CudaGraphs.Y" in detail and "1 failed" in detail, detail
    assert "AttentionPadded" in detail, detail  # a GPU test skipped on a GPU machine
    ok = "\n".join(log.splitlines()[:10])
    code, detail, rep = gtest_verdict(exp[:3], ok, allow, True)
    assert code == 1 and "1 skipped on a GPU machine (first: Cases/" in detail, detail
    code, detail, rep = gtest_verdict(exp[2:3], "\n".join(log.splitlines()[6:10]), allow, True)
    assert code == 0 and rep == ["SKIPPED CudaEmbed.M (allowed: 90 MB)"], (detail, rep)
    nogpu = "\n".join(log.splitlines()[2:6])
    assert gtest_verdict(exp[1:2], nogpu, allow, False)[0] == 3
    assert gtest_verdict(exp[:2], nogpu, allow, False)[0] == 1  # one did not report
    v = sanitizer_verdict
    assert v("========= COMPUTE-SANITIZER\nok\n========= ERROR SUMMARY: 0 errors\n", 0, True)[0] == "PASS"
    assert v("========= Invalid __global__ read\n========= ERROR SUMMARY: 2 errors\n", 9, True)[0] == "FAIL"
    assert v("========= RACECHECK SUMMARY: 1 hazard displayed (1 error, 0 warnings)\n", 9, True)[0] == "FAIL"
    assert v("========= RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)\n", 0, True)[0] == "PASS"
    s = v("========= Error: Device not supported\n", 1, False)
    assert s[0] == "SKIP" and "Device not supported" in s[1], s
    s = v("========= COMPUTE-SANITIZER\n========= Error: Device not supported\n"
          "========= ERROR SUMMARY: 0 errors\n", 0, False)
    assert s[0] == "SKIP" and "Device not supported" in s[1], s
    s = v("========= COMPUTE-SANITIZER\n========= ERROR SUMMARY: 0 errors\n", 0, False)  # false pass
    assert s[0] == "SKIP", s
    assert v("anything", 124, False)[0] == "TIMEOUT"
    assert v("test failed\n========= ERROR SUMMARY: 0 errors\n", 1, True)[0] == "FAIL"
    assert v("ember: bad\n========= ERROR SUMMARY: 0 errors\n", 1, False)[0] == "FAIL"
    ptx = parse_ptxas("ptxas info    : Compiling entry function '_Z1kv' for 'sm_90a'\n"
                      "ptxas info    : Function properties for _Z1kv\n"
                      "    8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads\n"
                      "ptxas info    : Used 40 registers, used 1 barriers, 512 bytes smem, 0 bytes cmem[0]\n")
    assert ptx == {"_Z1kv": {"arch": "sm_90a", "stack": 8, "spill_st": 4, "spill_ld": 4, "regs": 40,
                             "smem": 512}}, ptx
    sass = parse_sass("\t\tFunction : _Z1kv\n"
                      "        /*0000*/                   HMMA.16816.F32 R4, R8, R12, R4 ;  /* 0x */\n"
                      "        /*0010*/              @!P0 STL [R1], R2 ;  /* 0x */\n"
                      "        /*0020*/                   HGMMA.64x64x16.F32 R24, gdesc[UR4], RZ ; /* */\n")
    assert sass == {"_Z1kv": {"HMMA": 1, "HGMMA": 1, "LDL/STL": 1, "instr": 3}}, sass
    print("gpu_check_util selftest: passed")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("sass-report")
    p.add_argument("--build-log", required=True)
    p.add_argument("--cuobjdump", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--arch", default="sm_90a", help="the only SASS target allowed ('any': no check)")
    p.add_argument("files", nargs="+")
    p.set_defaults(fn=cmd_sass_report)
    p = sub.add_parser("deb-extract")
    p.add_argument("deb")
    p.add_argument("dest")
    p.add_argument("names", nargs="+")
    p.set_defaults(fn=cmd_deb_extract)
    p = sub.add_parser("xz")
    p.add_argument("-d", "--decompress", action="store_true")
    p.add_argument("src")
    p.add_argument("dst")
    p.set_defaults(fn=cmd_xz)
    p = sub.add_parser("gtest-verdict")
    p.add_argument("--expected", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--allow")
    p.add_argument("--gpu", type=int, default=1)
    p.set_defaults(fn=cmd_gtest_verdict)
    p = sub.add_parser("gtest-remaining")
    p.add_argument("--expected", required=True)
    p.add_argument("--log", required=True)
    p.set_defaults(fn=cmd_gtest_remaining)
    p = sub.add_parser("sanitizer-verdict")
    p.add_argument("log")
    p.add_argument("rc", type=int)
    p.add_argument("ran", type=int, help="1 when the program's own output is there")
    p.set_defaults(fn=cmd_sanitizer_verdict)
    p = sub.add_parser("selftest")
    p.set_defaults(fn=cmd_selftest)
    a = ap.parse_args()
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
