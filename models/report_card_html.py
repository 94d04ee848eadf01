"""Render a report card (the dict :func:`models.report_card.build_report_card` returns) as one
self-contained HTML page: inline CSS, images as base64 ``data:`` URIs, no script and no external
resource, so it opens offline, in an e-mail or behind the API alike.

The page markup lives here rather than in a template file because package data ships only a few
file types; every value is escaped with :func:`html.escape`.
"""

from __future__ import annotations

import base64
import io
import json
from html import escape

SECTION_TITLES = {
    "summary": "Summary",
    "quality": "Quality",
    "per_class": "Per-class metrics",
    "confusion": "Confusion matrices",
    "calibration": "Calibration",
    "efficiency": "Efficiency (CPU)",
    "learning_curves": "Learning curves",
    "config": "Configuration",
    "export": "Export",
}

_CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#d9e2ec; --bg:#f5f7fa; --accent:#2f6fed; --good:#1f9d55;
        --bad:#cc3b3b; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color:var(--ink); background:var(--bg); }
main { max-width:1180px; margin:0 auto; padding:24px 28px 40px; }
header h1 { margin:0 0 4px; font-size:26px; }
.sub { color:var(--muted); margin:0; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:16px 20px;
          margin:18px 0; }
h2 { font-size:18px; margin:0 0 12px; border-bottom:2px solid var(--accent); display:inline-block;
     padding-bottom:2px; }
h3 { font-size:14px; margin:12px 0 6px; }
table { border-collapse:collapse; font-variant-numeric:tabular-nums; }
th, td { border-bottom:1px solid var(--line); padding:5px 10px; text-align:right; }
th:first-child, td:first-child { text-align:left; }
thead th { background:var(--bg); font-weight:600; }
.tiles { display:flex; flex-wrap:wrap; gap:12px; }
.tile { flex:1 1 150px; border:1px solid var(--line); border-radius:8px; padding:10px 12px; }
.tile .v { font-size:22px; font-weight:600; }
.tile .k { color:var(--muted); font-size:12px; }
.grid { display:flex; flex-wrap:wrap; gap:22px; align-items:flex-start; }
.cm td.cell { text-align:center; min-width:44px; }
.note { color:var(--muted); font-size:12px; }
.warn { background:#fff4e5; border:1px solid #f0b429; border-radius:6px; padding:8px 12px; margin:6px 0; }
.ok { color:var(--good); font-weight:600; } .fail { color:var(--bad); font-weight:600; }
pre { background:var(--bg); border:1px solid var(--line); border-radius:6px; padding:10px; font-size:12px;
      overflow:auto; max-height:420px; }
img { max-width:100%; border:1px solid var(--line); border-radius:6px; }
table.kv th { background:none; font-weight:600; text-align:left; color:var(--muted); }
table.kv td { text-align:left; font-family:ui-monospace, Menlo, Consolas, monospace; font-size:12px; }
.cols { columns:2 360px; }
footer { color:var(--muted); font-size:12px; text-align:center; }
"""


def render_report_card(card: dict, images: dict[str, bytes]) -> str:
    """The HTML page of a report card.

    Args:
        card: The report card dict.
        images: PNG bytes by name (``learning_curves``, ``reliability``), embedded as data URIs.
    """
    uris = {name: data_uri(png) for name, png in images.items()}
    ds = card["dataset"]
    body = [
        "<header>",
        f"<h1>Report card: {escape(ds['name'])}</h1>",
        f"<p class='sub'>{escape(ds['task_kind'])}, {ds['n_dev']} dev examples, primary metric "
        f"<b>{escape(card['metric'])}</b> &middot; created {escape(card['created_at'])}</p>",
        "</header>",
        *(f"<div class='warn'>{escape(w)}</div>" for w in card["warnings"]),
        _section("summary", _summary(card)),
        _section("quality", _quality(card)),
        _section("per_class", _per_class(card)),
        _section("confusion", _confusion(card)),
        _section("calibration", _calibration(card, uris.get("reliability"))),
        _section("efficiency", _efficiency(card)),
        _section("learning_curves", _learning_curves(card, uris.get("learning_curves"))),
        _section("config", _config(card)),
        _section("export", _export(card)),
        f"<footer>AutoDistiller report card &middot; run {escape(card['run_dir'])} &middot; code "
        f"{escape(str(card['measurement'].get('code_version')))}</footer>",
    ]
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Report card: {escape(ds['name'])}</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def _section(key: str, content: str) -> str:
    return f"<section id='{key}'><h2>{SECTION_TITLES[key]}</h2>{content}</section>"


def _num(x, digits: int = 4) -> str:
    if x is None:
        return "&ndash;"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:.{digits}f}"


def _measured(card: dict) -> list[dict]:
    return [m for m in card["models"].values() if m["available"]]


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    th = "".join(f"<th>{h}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='{cls}'><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def _summary(card: dict) -> str:
    s, metric = card["summary"], escape(card["metric"])

    def tile(value: str, key: str) -> str:
        return f"<div class='tile'><div class='v'>{value}</div><div class='k'>{key}</div></div>"

    tiles = [
        tile(_num(s["teacher_score"]), f"teacher {metric}"),
        tile(_num(s["student_score"]), f"distilled student {metric}"),
        tile(_num(s["ratio"], 3), "ratio (student / teacher)"),
        tile(_num(s["no_kd_score"]), f"student without KD {metric}"),
        tile(_num(s["int8_score"]), f"int8 student {metric}"),
        tile(
            "&ndash;" if s["speedup_batch1"] is None else f"{s['speedup_batch1']:.2f}&times;",
            "CPU speed-up at batch 1 (student vs. teacher)",
        ),
        tile(
            "&ndash;" if s["int8_speedup_batch1"] is None else f"{s['int8_speedup_batch1']:.2f}&times;",
            "CPU speed-up at batch 1 (int8 vs. teacher)",
        ),
        tile(_num(s["agreement_with_teacher"], 3), "agreement with the teacher"),
    ]
    gain = s["kd_gain_over_no_kd"]
    verdict = (
        ""
        if gain is None
        else f"<p>KD {'gains' if gain >= 0 else 'loses'} <b>{abs(gain):.4f}</b> {metric} over training the "
        "same student without KD.</p>"
    )
    return f"<div class='tiles'>{''.join(tiles)}</div>{verdict}"


def _unavailable(card: dict) -> str:
    items = [
        f"<li><b>{escape(m['label'])}</b>: {escape(m['note'])}</li>"
        for m in card["models"].values()
        if not m["available"]
    ]
    return f"<p class='note'>Not measured:</p><ul class='note'>{''.join(items)}</ul>" if items else ""


def _quality(card: dict) -> str:
    models = _measured(card)
    names = list(models[0]["metrics"])
    head = ["model", *(escape(n) for n in names), "ratio", "agreement with teacher"]
    rows = [
        [
            escape(m["label"]),
            *(_num(m["metrics"][n]) for n in names),
            _num(m["ratio"], 3),
            _num(m["agreement_with_teacher"], 3),
        ]
        for m in models
    ]
    note = (
        "<p class='note'>All models measured here on the same dev split. Agreement: share of equal "
        "predicted classes (classification) or Pearson correlation of outputs (regression).</p>"
    )
    return _table(head, rows) + note + _unavailable(card)


def _per_class(card: dict) -> str:
    if card["dataset"]["task_kind"] != "classification":
        return "<p class='note'>Regression task: no classes.</p>"
    blocks = []
    for m in _measured(card):
        rows = [
            [
                escape(name),
                _num(v["precision"], 3),
                _num(v["recall"], 3),
                _num(v["f1"], 3),
                _num(v["support"]),
            ]
            for name, v in m["per_class"].items()
        ]
        blocks.append(
            f"<div><h3>{escape(m['label'])}</h3>"
            f"{_table(['class', 'precision', 'recall', 'F1', 'support'], rows)}</div>"
        )
    return f"<div class='grid'>{''.join(blocks)}</div>"


def _confusion(card: dict) -> str:
    if card["dataset"]["task_kind"] != "classification":
        return "<p class='note'>Regression task: no confusion matrix.</p>"
    labels = card["dataset"]["label_names"]
    head = "".join(f"<th>{escape(x)}</th>" for x in labels)
    blocks = []
    for m in _measured(card):
        rows = []
        for name, counts in zip(labels, m["confusion_matrix"], strict=True):
            total = sum(counts) or 1
            cells = "".join(
                f"<td class='cell' style='background:rgba(47,111,237,{c / total:.2f});"
                f"color:{'#fff' if c / total > 0.55 else 'inherit'}'>{c}</td>"
                for c in counts
            )
            rows.append(f"<tr><td>{escape(name)}</td>{cells}</tr>")
        blocks.append(
            f"<div><h3>{escape(m['label'])}</h3><table class='cm'><thead><tr><th>true &#92; predicted</th>"
            f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )
    return (
        f"<div class='grid'>{''.join(blocks)}</div>"
        "<p class='note'>Rows: true class; columns: predicted class; shading: share of the row.</p>"
    )


def _calibration(card: dict, reliability_uri: str | None) -> str:
    cal = card["calibration"]
    if cal.get("method") is None:
        return f"<p class='note'>{escape(cal['note'])}</p>"
    rows = [[escape(m["label"]), _num(m["ece"])] for m in _measured(card)]
    img = f"<img alt='reliability diagram' src='{reliability_uri}' width='500'>" if reliability_uri else ""
    return (
        f"<div class='grid'><div>{_table(['model', 'ECE'], rows)}"
        f"<p class='note'>{escape(cal['method'])}; lower is better.</p></div>{img}</div>"
    )


def _efficiency(card: dict) -> str:
    rows = []
    for m in _measured(card):
        size = m["file_size_bytes"] / 2**20
        rows.append(
            [
                escape(m["label"]),
                escape(f"{m['runtime']} {m['precision']}"),
                _num(m["parameters"]),
                f"{size:.1f}",
                _num(m["latency_ms_batch1"], 2),
                _num(m["throughput_batch32"], 1),
                f"{m['speedup_batch1']:.2f}&times;",
            ]
        )
    head = [
        "model",
        "runtime",
        "parameters",
        "file size (MiB)",
        "ms / example (batch 1)",
        "examples / s (batch 32)",
        "speed-up (batch 1)",
    ]
    meas = card["measurement"]
    sp = meas["speed"]
    note = (
        f"<p class='note'>CPU, {meas['threads']} thread(s) for PyTorch and ONNX Runtime alike; "
        f"max length {meas['max_length']}; batch 1: median of {sp['latency_examples']} dev examples after "
        f"{sp['warmup']} warm-up calls; batch {sp['batch_size']}: {sp['throughput_batches']} batches, "
        "dynamic padding. The models are timed side by side, taking turns call by call, so the "
        "speed-ups compare like with like. Small samples: expect some noise.</p>"
    )
    return _table(head, rows) + note


def _learning_curves(card: dict, uri: str | None) -> str:
    if uri is None:
        return f"<p class='note'>{escape(card['learning_curves']['note'] or 'not available')}</p>"
    return f"<img alt='learning curves' src='{uri}'>"


def _config(card: dict) -> str:
    rec = card.get("recommendation")
    parts = [f"<p>Config source: <b>{escape(card['config_source'])}</b></p>"]
    if rec:
        parts.append("<h3>Recommendation</h3>" + _kv(rec.items()))
        if isinstance(rec.get("predicted_ratio"), int | float) and card["summary"]["ratio"] is not None:
            parts.append(
                f"<p>Predicted ratio {rec['predicted_ratio']:.3f}; achieved "
                f"{card['summary']['ratio']:.3f}.</p>"
            )
    cfg = card["config"]
    spec = cfg.get("spec") or {}
    # the student spec's set fields only (num_layers: 2), not its eight mostly-null options
    student = {k: v for k, v in (spec.get("student") or {}).items() if v not in (None, False)}
    facts = [
        ("teacher", spec.get("teacher") or (cfg.get("teacher") or {}).get("name")),
        ("student", json.dumps(student) if student else (cfg.get("student") or {}).get("name")),
        ("dataset", spec.get("dataset") or card["dataset"]["name"]),
        ("pipeline key", cfg.get("pipeline_key")),
    ]
    parts.append(_kv(facts))
    flat = [
        (f"{section}.{key}", value)
        for section, values in cfg["kd_config"].items()
        for key, value in (values.items() if isinstance(values, dict) else [("", values)])
    ]
    parts.append(f"<h3>KD config</h3><div class='cols'>{_kv(flat)}</div>")
    return "".join(parts)


def _kv(pairs) -> str:
    """A two-column key/value table."""
    rows = "".join(
        f"<tr><th>{escape(str(k))}</th><td>{escape(v if isinstance(v, str) else json.dumps(v))}</td></tr>"
        for k, v in pairs
    )
    return f"<table class='kv'><tbody>{rows}</tbody></table>"


def _export(card: dict) -> str:
    exp = card["export"]
    status = exp.get("status")
    if status == "not_exported":
        return "<p class='note'>Not exported yet: run <code>autodistiller export &lt;run dir&gt;</code>.</p>"
    badge = f"<span class='{'ok' if status == 'ok' else 'fail'}'>{escape(str(status))}</span>"
    parts = [f"<p>Status: {badge}; offered: {escape(', '.join(exp.get('offered') or []) or 'nothing')}</p>"]
    if exp.get("error"):
        parts.append(f"<div class='warn'>{escape(exp['error'])}</div>")
    ver = exp.get("verification")
    if ver:
        rows = []
        for variant, v in ver["variants"].items():
            agree = v.get("agreement", v.get("correlation"))
            rows.append(
                [
                    escape(variant),
                    _num(agree),
                    f"{v['max_abs_logit_diff']:.2e}",
                    _num(v["metric_delta"]),
                    "<span class='ok'>passed</span>"
                    if v["passed"]
                    else f"<span class='fail'>{escape('; '.join(v['failures']))}</span>",
                ]
            )
        parts.append(
            _table(["variant", "agreement with PyTorch", "max abs logit diff", "metric delta", "check"], rows)
        )
        parts.append(
            f"<p class='note'>Verified on {ver['n_examples']} {escape(ver['split'])} examples; thresholds "
            f"{escape(json.dumps(exp.get('thresholds')))}.</p>"
        )
    elif status == "ok":
        parts.append("<p class='note'>Exported without verification.</p>")
    sizes = exp.get("sizes_bytes") or {}
    if sizes:
        rows = [
            [escape(k), escape(str((exp.get("artifacts") or {}).get(k, ""))), f"{v / 2**20:.1f}"]
            for k, v in sizes.items()
        ]
        parts.append(_table(["artifact", "path (in the run directory)", "size (MiB)"], rows))
    return "".join(parts)


def reliability_png(models: dict) -> bytes:
    """A reliability diagram (accuracy vs. confidence per bin), one line per measured model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    for entry in models.values():
        if entry.get("available") and entry.get("reliability"):
            bins = entry["reliability"]
            ax.plot(
                [b["confidence"] for b in bins],
                [b["accuracy"] for b in bins],
                marker="o",
                ms=3,
                label=f"{entry['label']} (ECE {entry['ece']:.3f})",
            )
    ax.set(
        xlabel="confidence (max softmax probability)",
        ylabel="accuracy",
        xlim=(0, 1),
        ylim=(0, 1.02),
        title="Reliability diagram (dev)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    """A PNG as an inline ``data:`` URI (the card must load no external resource)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
