"""benches/ensembles.py's report: the markdown section (bars met / not met from the figures)
and the SVG chart of ns per tree·row."""

import math
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

FRAMEWORK = {"m1": "lightgbm", "m2": "xgboost", "m3": "lightgbm"}
NAMES = {"treeserve": "treeserve (in-process)", "xgboost": "xgboost inplace_predict", "lightgbm": "lightgbm predict",
         "onnxruntime": "onnxruntime", "tl2cgen": "tl2cgen (gcc -O3)", "lleaves": "lleaves (LLVM)"}
ORDER = ["treeserve", "xgboost", "lightgbm", "onnxruntime", "tl2cgen", "lleaves"]
COLOURS = {"treeserve": "#1f77b4", "xgboost": "#d62728", "lightgbm": "#2ca02c", "onnxruntime": "#9467bd",
           "tl2cgen": "#ff7f0e", "lleaves": "#8c564b"}
PACKAGES = ("xgboost-cpu", "lightgbm", "onnxruntime", "onnxmltools", "treelite", "tl2cgen", "lleaves", "llvmlite",
            "numpy")
BEGIN = "<!-- benches/ensembles.py: generated section begins -->"
END = "<!-- benches/ensembles.py: generated section ends -->"


def versions(treeserve):
    from importlib.metadata import version

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.machine())
    v = {p: version(p) for p in PACKAGES}
    v["treeserve"] = subprocess.run([str(treeserve), "--version"], capture_output=True, text=True).stdout.strip()
    v["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                 cwd=Path(__file__).resolve().parent).stdout.strip()
    v["gcc"] = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    # treeserve's vector walk needs AVX-512 F and VL (src/model/wide_simd.rs); with AVX2
    # alone one row of f32 nodes (XGBoost's) walks with AVX2 (src/model/wide_avx2.rs) and the
    # rest with the scalar keyed walk; without either, every walk is scalar.
    flags = next((set(ln.split(":", 1)[1].split()) for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("flags")), set())
    if os.environ.get("TREESERVE_VECTOR_WALK") == "off":
        walk = "scalar grouped walk (TREESERVE_VECTOR_WALK=off)"
    elif {"avx512f", "avx512vl"} <= flags:
        walk = "vector walk (AVX-512 F and VL)"
    elif "avx2" in flags:
        walk = "AVX2 walk for one row of f32 nodes, else the scalar grouped walk (no AVX-512 F and VL)"
    else:
        walk = "scalar grouped walk (no AVX-512 F and VL, no AVX2)"
    v["machine"] = f"{os.cpu_count()} cores, {cpu}; treeserve: {walk}"
    return v


def fmt(x):
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def bars(args, metas, cells, par, csv, http):
    """(bar, figure, met) rows: met is True / False, or None where not measured."""
    N = os.cpu_count() or 1
    big = args.rows
    out = []
    c = cells.get(("m2", "treeserve", 1, 1))
    out.append(("m2, one row in-process ≤ 2 µs", f"{c['us_per_call']:.2f} µs" if c else "—",
                c["us_per_call"] <= 2 if c else None))
    c = cells.get(("m2", "treeserve", big, 1))
    per_row = c["seconds"] / metas["m2"]["rows"] * 1e6 if c else None
    out.append((f"m2, batch of {big:,} ≤ 1 µs per row on one core", f"{per_row:.3f} µs per row" if c else "—",
                per_row <= 1 if c else None))
    for who, need, label in (("tl2cgen", 1.0, "TL2cgen's compiled code"), ("framework", 3.0, "the framework's own predict"),
                             ("lleaves", 1.0, "lleaves' compiled code (the anchors' best on LightGBM; not an issue bar)")):
        figs, ok = [], []
        for n in metas:
            if who == "lleaves" and FRAMEWORK[n] != "lightgbm":
                continue
            other = FRAMEWORK[n] if who == "framework" else who
            for t in sorted({1, N}):
                a, b = cells.get((n, "treeserve", big, t)), cells.get((n, other, big, t))
                if a and b:
                    r = a["rows_per_s"] / b["rows_per_s"]
                    figs.append(f"{n} {t}t {r:.2f}×" + (f" ({other})" if who == "framework" else ""))
                    ok.append(r >= need)
                else:
                    figs.append(f"{n} {t}t —")
                    ok.append(None)
        met = None if None in ok and not (False in ok) else (all(ok) if ok else None)
        which = "LightGBM's models" if who == "lleaves" else "all models"
        out.append((f"batch {big:,} throughput ≥ {need:.0f}× {label}, same threads, {which}", "; ".join(figs), met))
    if csv:
        figs = [f"{int(n):,} rows: {v['ratio']:.2f}× ({v['treeserve_s'] * 1e3:.1f} ms vs "
                f"{min(v['xgboost_1t_s'], v['xgboost_all_s']) * 1e3:.1f} ms)" for n, v in csv.items()]
        out.append(("`treeserve predict` CSV → CSV with m2 ≥ 3× faster than XGBoost inplace_predict from numpy "
                    f"(treeserve {N} threads; XGBoost's faster of 1 and {N})", "; ".join(figs),
                    all(v["ratio"] >= 3 for v in csv.values())))
    else:
        out.append(("`treeserve predict` CSV → CSV ≥ 3× XGBoost inplace_predict", "not run", None))
    if http:
        h = http.get("1/m2")
        out.append(("/score at 1 connection, m2: p50 ≤ 1.25× IRIS's p50",
                    f"{h['p50_ratio']:.2f}× ({h['p50_us']:.0f} µs vs {http['1/iris']['p50_us']:.0f} µs)",
                    h["p50_ratio"] <= 1.25))
    else:
        out.append(("/score at 1 connection, m2: p50 ≤ 1.25× IRIS's p50", "not run", None))
    mem = (http or {}).get("memory")
    if mem:
        out.append(("resident memory ≤ 2× the compact size (m2 in a server)",
                    f"{mem['ratio']:.2f}× ({mem['growth_bytes'] / 2**20:.1f} MiB resident for "
                    f"{mem['compact_bytes'] / 2**20:.2f} MiB compact)", mem["ratio"] <= 2))
    else:
        out.append(("resident memory ≤ 2× the compact size (m2 in a server)", "not run", None))
    out.append(("the IRIS tree's /score ratio to the floor does not drop", "measured by benches/load.py, not here", None))
    ts = [(n, v) for (n, c), v in par.items() if c == "treeserve"]
    figs = [f"{n}: {v['bit_equal']:,} of {v['rows']:,} bit for bit, {v['beyond_tolerance']} beyond tolerance" for n, v in ts]
    out.append(("predictions equal the frameworks' on every benchmark row", "; ".join(figs),
                bool(ts) and len(ts) == len(metas) and all(v["beyond_tolerance"] == 0 for _, v in ts)))
    return out


def markdown(args, metas, cells, par, csv, http, errors, v, runs):
    N = os.cpu_count() or 1
    big = args.rows
    cmd = "python3 benches/ensembles.py" + (" --quick" if args.quick else f" --rounds {args.rounds}")
    lines = [
        f"`{cmd} --out docs/benchmarks.md --chart docs/ensembles.svg` ({time.strftime('%Y-%m-%d')}, {v['machine']}; "
        f"{v['treeserve']} at {v['commit']}). Each contender runs in its own process, the order alternated between "
        f"rounds; every figure is the median of {args.rounds} round(s). Every timing predicts each of {big:,} unseen "
        "synthetic rows once (no row repeated), from an array already in the contender's dtype (treeserve: f64; "
        "XGBoost, ONNX Runtime: f32; LightGBM, lleaves: f64; TL2cgen: the model's threshold type). Threads set "
        f"explicitly (nthread, num_threads, intra_op_num_threads, Predictor(nthread), n_jobs): 1, and all {N}. "
        "Versions: " + ", ".join(f"{k} {v[k]}" for k in PACKAGES if k in v)
        + f"; {v['gcc']}. lleaves: LightGBM's models compiled with its default flags. "
        "treelite + TL2cgen: gcc -O3, branch annotation (5,000 other rows), quantize=1 "
        "(tl2cgen 1.0.0 embeds Treelite 4.1.2 and warns that a 4.8.1 model \"may\" lack some functionality; "
        "its predictions are checked below).",
        "",
        "**Bars (issue 21)**",
        "",
        "| bar | figure | met |",
        "|---|---|---|",
    ]
    for bar, fig, met in bars(args, metas, cells, par, csv, http):
        lines.append(f"| {bar} | {fig} | {'—' if met is None else ('met' if met else 'not met')} |")
    lines += ["", "**In-process: µs per call / ns per tree·row** (rows/s at the largest batch)", ""]
    for n, m in metas.items():
        lines += [f"{m['title']} (mean {m['mean_leaves']:.0f} leaves per tree)", "",
                  f"| contender | threads | batch 1 | batch 100 | batch {big:,} | rows/s, batch {big:,} |",
                  "|---|---:|---:|---:|---:|---:|"]
        for c in ORDER:
            for t in sorted({1, N}):
                row = [cells.get((n, c, b, t)) for b in (1, 100, big)]
                if not any(row):
                    continue
                cellf = lambda x: f"{fmt(x['us_per_call'])} / {fmt(x['ns_per_tree_row'])}" if x else "—"  # noqa: E731
                last = row[2]
                tail = f" | {last['rows_per_s']:,.0f} |" if last else " | — |"
                lines.append(f"| {NAMES[c]} | {t} | " + " | ".join(cellf(x) for x in row) + tail)
        for c in ORDER:
            if (n, c) in errors:
                lines.append(f"| {NAMES[c]} | — | failed: {errors[(n, c)][:200]} | | | |")
        if m.get("tl2cgen_error"):
            lines.append(f"| {NAMES['tl2cgen']} | — | not built: {m['tl2cgen_error'][:200]} | | | |")
        if m.get("lleaves_error") and FRAMEWORK[n] == "lightgbm":
            lines.append(f"| {NAMES['lleaves']} | — | not built: {m['lleaves_error'][:200]} | | | |")
        if m.get("onnx_error"):
            lines.append(f"| onnxruntime | — | not converted: {m['onnx_error'][:200]} | | | |")
        lines.append("")
    loads = [f"{n} {statistics.median(r['load_seconds'] for r in runs[(n, 'treeserve')]) * 1e3:.1f} ms"
             for n in metas if runs.get((n, "treeserve"))]
    if loads:
        lines += ["treeserve's `Model::from_bytes` (header and checksums, the stored layout read and checked, golden rows), in the in-process "
                  "contender: " + ", ".join(loads) + ".", ""]
    lines += ["**Parity** with the framework's own predictions (treeserve's must hold: tolerance "
              "|a−b| ≤ 1e-6·max(|b|, 1e-3); ONNX Runtime's, TL2cgen's and lleaves' are reported)", "",
              "| model | contender | rows | bit for bit | beyond tolerance | max \\|a−b\\| |", "|---|---|---:|---:|---:|---:|"]
    for (n, c), p in par.items():
        lines.append(f"| {n} | {NAMES[c]} vs {FRAMEWORK[n]} | {p['rows']:,} | {p['bit_equal']:,} | "
                     f"{p['beyond_tolerance']} | {p['max_abs']:.3g} |")
    lines.append("")
    if csv:
        lines += ["**`treeserve predict` CSV → CSV with m2** (the whole process: start, load, parse, predict, write "
                  "`--probabilities`; after one untimed run, with the binary and the files in the page cache) against "
                  "XGBoost's inplace_predict on the same rows already in a float32 numpy array (after its warm-up "
                  "call)", "",
                  f"| rows | CSV | treeserve predict ({N} threads) | xgboost 1 thread | xgboost {N} threads | "
                  "ratio to the faster | ratio, same threads | rows beyond tolerance |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for rows, c in csv.items():
            lines.append(f"| {int(rows):,} | {c['csv_mib']:.1f} MiB | {c['treeserve_s'] * 1e3:.1f} ms | "
                         f"{c['xgboost_1t_s'] * 1e3:.1f} ms | {c['xgboost_all_s'] * 1e3:.1f} ms | "
                         f"{c['ratio']:.2f}× | {c['ratio_all']:.2f}× | {c['rows_beyond_tolerance']} |")
        lines.append("")
    if http:
        lines += [f"**POST /models/{{m2,iris}}/score**, one row per request cycling through many different rows "
                  f"(m2: 10,000 unseen rows; IRIS: its 150), one server, wrk on the same machine, "
                  f"{args.http_duration} s per run", "",
                  "| connections | model | req/s | p50 µs | p99 µs | server CPU µs/req | errors | p50 ÷ IRIS |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|"]
        for h in (h for k, h in http.items() if k != "memory"):
            lines.append(f"| {h['connections']} | {h['model']} | {h['rps']:,.0f} | {h['p50_us']:.0f} | {h['p99_us']:.0f} "
                         f"| {h['cpu_us_per_req']:.1f} | {h['errors']} | {h['p50_ratio']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def write_section(path, md):
    text = path.read_text() if path.exists() else ""
    section = f"{BEGIN}\n{md}{END}"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text + ("\n" if text else "") + "## Large ensembles against the frameworks\n\n" + section + "\n"
    path.write_text(text)


def chart(metas, cells, big):
    """Four panels (batch 1, 100 and `big` on one thread; `big` on all threads), models on
    the x axis, one bar per contender, ns per tree·row on a log scale."""
    N = os.cpu_count() or 1
    panels = [(1, 1), (100, 1), (big, 1), (big, N)]
    vals = [v["ns_per_tree_row"] for v in cells.values()]
    lo = 10 ** math.floor(math.log10(max(min(vals), 1e-3)))
    hi = 10 ** math.ceil(math.log10(max(vals)))
    W, H, P, PW = 1000, 400, 55, 215
    ph = H - 2 * P - 30
    y = lambda v: P + ph - ph * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))  # noqa: E731
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         'font-family="sans-serif" font-size="12">', f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="15">ns per tree·row (log scale, lower is '
         'better), median of rounds</text>']
    models = list(metas)
    for k, (b, t) in enumerate(panels):
        x0 = P + k * (PW + 25)
        o.append(f'<text x="{x0 + PW / 2}" y="{P - 12}" text-anchor="middle" font-size="13">batch {b:,}, '
                 f'{t} thread{"s" if t > 1 else ""}</text>')
        o.append(f'<rect x="{x0}" y="{P}" width="{PW}" height="{ph}" fill="none" stroke="#888"/>')
        e = math.log10(lo)
        while e <= math.log10(hi) + 1e-9:
            v = 10**e
            o.append(f'<line x1="{x0}" x2="{x0 + PW}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>')
            if k == 0:
                o.append(f'<text x="{x0 - 5}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
            e += 1
        gw = PW / len(models)
        for i, n in enumerate(models):
            bw = (gw - 10) / len(ORDER)
            for j, c in enumerate(ORDER):
                cell = cells.get((n, c, b, t))
                if not cell:
                    continue
                v = max(cell["ns_per_tree_row"], lo)
                bx = x0 + i * gw + 5 + j * bw
                o.append(f'<rect x="{bx:.1f}" y="{y(v):.1f}" width="{bw - 1:.1f}" height="{P + ph - y(v):.1f}" '
                         f'fill="{COLOURS[c]}"><title>{n} {c}: {v:.1f} ns</title></rect>')
            o.append(f'<text x="{x0 + i * gw + gw / 2:.1f}" y="{P + ph + 16}" text-anchor="middle">{n}</text>')
    for j, c in enumerate(ORDER):
        lx = P + j * 155
        o.append(f'<rect x="{lx}" y="{H - 28}" width="14" height="14" fill="{COLOURS[c]}"/>')
        o.append(f'<text x="{lx + 20}" y="{H - 16}">{NAMES[c]}</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"
