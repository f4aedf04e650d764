"""Write what `deid evaluate` measured: JSON and CSV for scripts, the trade-off plot and an HTML page for people."""

from __future__ import annotations

import csv
import html
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from deidcli.evaluation.evaluate import (
    PRIVATE_RANK1,
    PROTECT_RECOGNIZERS,
    PROTECT_RULE,
    STOP_AFTER,
    Evaluation,
    protects,
)

CSV_FIELDS = ["method", "strength", "recognizer", "rank1", "rank5", "rank1_open", "tar", "chance_rank1",
              "chance_rank1_open", "probes", "protects", "detected", "psnr_face", "ssim_face", "psnr_image", "ssim_image",
              "diversity", "detail", "yaw_error", "pitch_error", "roll_error", "mouth_error", "tone_error",
              "landmarks_found", "rejected", "accepted_other"]  # the last two: M-SVDD recognizers only
ATTRIBUTE_COLUMNS = {"yaw": "yaw_error", "pitch": "pitch_error", "roll": "roll_error", "mouth": "mouth_error",
                     "tone": "tone_error", "found": "landmarks_found"}


def write_all(result: Evaluation, folder: Path) -> dict[str, Path]:
    """Every file of the evaluation in ``folder``; returns them by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "json": folder / "evaluation.json",
        "csv": folder / "evaluation.csv",
        "plot": folder / "tradeoff.png",
        "html": folder / "index.html",
    }
    files["json"].write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    write_csv(result, files["csv"])
    plot_tradeoff(result, files["plot"])
    examples = write_examples(result, folder)
    sheet = folder / "contact_sheet.png"
    if write_contact_sheet(result, sheet):
        files["contact_sheet"] = sheet
    files["html"].write_text(html_page(result, files["plot"].name, examples,
                                       sheet.name if "contact_sheet" in files else None))
    return files


def rows(result: Evaluation) -> list[dict]:
    out = []
    for s in result.settings:
        for rec, fig in s.recognizers.items():
            out.append({"method": s.method, "strength": s.strength, "recognizer": rec, **fig,
                        "protects": int(protects(s)), "detected": s.detected, "psnr_face": s.psnr_face,
                        "ssim_face": s.ssim_face, "psnr_image": s.psnr_image, "ssim_image": s.ssim_image,
                        "detail": s.detail,
                        **{col: s.attributes[k] for k, col in ATTRIBUTE_COLUMNS.items() if k in s.attributes}})
    return out


def write_csv(result: Evaluation, path: Path) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        w.writeheader()
        for r in rows(result):
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def plot_tradeoff(result: Evaluation, path: Path) -> None:
    """Rank-1 identification (and verification) against face-region PSNR: one curve per method and recognizer, and
    each setting's measured chance as a cross of the curve's colour (rank-1 at or below its cross: no better than
    being shown someone else's anonymized face)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers and CI
    import matplotlib.pyplot as plt

    recs = list(result.baseline)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), sharex=True)
    cmap = plt.get_cmap("tab10")
    methods = list(dict.fromkeys(s.method for s in result.settings))
    styles = ["-", "--", ":"]
    for mi, method in enumerate(methods):
        pts = [s for s in result.settings if s.method == method]
        x = [min(s.psnr_face, 60.0) for s in pts]
        for ri, rec in enumerate(recs):
            for ax, key in zip(axes, ("rank1", "tar")):
                y = [s.recognizers[rec][key] * 100 for s in pts]
                label = method if len(recs) == 1 else f"{method} ({rec})"
                ax.plot(x, y, styles[ri % 3], marker="o", ms=4, color=cmap(mi % 10), label=label)
                if ri == 0:
                    for xi, yi, s in zip(x, y, pts):
                        ax.annotate(f"{s.strength:g}", (xi, yi), fontsize=7, xytext=(3, 3),
                                    textcoords="offset points", color=cmap(mi % 10))
            chance = [s.recognizers[rec].get("chance_rank1", math.nan) * 100 for s in pts]
            axes[0].plot(x, chance, ls="none", marker="x", ms=5, color=cmap(mi % 10))
    base = result.baseline[recs[0]]
    axes[0].axhline(base["chance_rank1"] * 100, color="grey", ls=":", lw=1, label="chance (1 in people)")
    axes[0].plot([], [], ls="none", marker="x", color="grey", label="measured chance")
    axes[0].axhline(PRIVATE_RANK1 * 100, color="red", ls="--", lw=1, label="5%")
    axes[0].set_ylabel("rank-1 identification of anonymized faces (%)")
    axes[1].set_ylabel(f"true accepts at {result.far:g} false accepts (%)")
    for ax in axes:
        ax.set_xlabel("PSNR of the face region (dB; higher = closer to the original)")
        ax.grid(alpha=0.3)
        ax.set_ylim(-3, 103)
    axes[0].legend(fontsize=8, ncol=2)
    fig.suptitle(f"Privacy against image quality: {result.photos} photos of {result.identities} people "
                 f"({', '.join(recs)}); numbers are strengths")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_examples(result: Evaluation, folder: Path, size: int = 96) -> dict[str, str]:
    """One PNG per method: a row per strength, a column per example photo (the anonymized face region)."""
    out = {}
    for method in dict.fromkeys(s.method for s in result.settings):
        strengths = [s.strength for s in result.settings if s.method == method]
        grid = []
        for st in strengths:
            crops = result.examples.get((method, st), [])
            tiles = [np.asarray(Image.fromarray(c).resize((size, size))) for c in crops if c.size]
            if tiles:
                grid.append(np.hstack(tiles))
        if grid:
            width = max(g.shape[1] for g in grid)
            grid = [np.pad(g, ((0, 0), (0, width - g.shape[1]), (0, 0))) for g in grid]
            name = f"examples_{method}.png"
            Image.fromarray(np.vstack(grid)).save(folder / name)
            out[method] = name
    return out


def sheet_setting(result: Evaluation, method: str):
    """The setting of ``method`` a contact sheet shows: the weakest that protects, else the strongest measured."""
    return result.weakest_protecting(method) or [s for s in result.settings if s.method == method][-1]


def write_contact_sheet(result: Evaluation, path: Path, size: int = 96) -> bool:
    """One PNG to look at: the example faces as they were (first row), then a row per method at the setting of
    :func:`sheet_setting`, labelled with its strength and whether it protects. False when there is nothing to show."""
    from PIL import ImageDraw

    rows: list[tuple[str, list[np.ndarray]]] = [("original", result.originals)] if result.originals else []
    for method in result.methods():
        s = sheet_setting(result, method)
        verdict = "protects" if protects(s) else "does not protect"
        rows.append((f"{method} {s.strength:g}\n{verdict}", result.examples.get((method, s.strength), [])))
    rows = [(label, crops) for label, crops in rows if any(c.size for c in crops)]
    if not rows:
        return False
    label_w, cols = 130, max(len(c) for _, c in rows)
    sheet = Image.new("RGB", (label_w + cols * (size + 4), len(rows) * (size + 4)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, crops) in enumerate(rows):
        y = r * (size + 4) + 2
        draw.multiline_text((6, y + size // 2 - 12), label, fill="black")
        for c, crop in enumerate(x for x in crops if x.size):
            sheet.paste(Image.fromarray(crop).resize((size, size)), (label_w + c * (size + 4), y))
    sheet.save(path)
    return True


def _fmt(v: float, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return f"{v * 100:.1f}%" if pct else f"{v:.2f}"


def html_page(result: Evaluation, plot_name: str, examples: dict[str, str], sheet_name: str | None = None) -> str:
    recs = list(result.baseline)
    # An M-SVDD recognizer answers "no one" where others give a distance: its last column is what it rejects.
    last = {r: "rejected" if "rejected" in result.baseline[r] else "tar" for r in recs}
    head = "".join(f"<th>{html.escape(r)} rank-1</th><th>{html.escape(r)} measured chance</th>"
                   f"<th>{html.escape(r)} rank-5</th><th>{html.escape(r)} open-set rank-1</th>"
                   f"<th>{html.escape(r)} {last[r].replace('tar', 'TAR')}</th>" for r in recs)
    body = []
    for s in result.settings:
        cells = "".join(f"<td>{_fmt(s.recognizers[r]['rank1'], True)}</td>"
                        f"<td>{_fmt(s.recognizers[r].get('chance_rank1'), True)}</td>"
                        f"<td>{_fmt(s.recognizers[r]['rank5'], True)}</td>"
                        f"<td>{_fmt(s.recognizers[r]['rank1_open'], True)}</td>"
                        f"<td>{_fmt(s.recognizers[r][last[r]], True)}</td>" for r in recs)
        body.append(f"<tr><td>{html.escape(s.method)}</td><td>{s.strength:g}</td>{cells}"
                    f"<td>{'yes' if protects(s) else ''}</td>"
                    f"<td>{_fmt(s.detected, True)}</td><td>{_fmt(s.psnr_face)}</td><td>{_fmt(s.ssim_face)}</td>"
                    f"<td>{_fmt(s.psnr_image)}</td><td>{_fmt(s.ssim_image)}</td><td>{_fmt(s.detail)}</td>"
                    f"<td>{_fmt(s.recognizers[recs[0]].get('diversity'))}</td>"
                    + "".join(f"<td>{_fmt(s.attributes.get(k))}</td>" for k in ("yaw", "mouth", "tone"))
                    + f"<td>{_fmt(s.attributes.get('found'), True)}</td></tr>")
    base = "".join(
        f"<li>{html.escape(r)} on the originals: rank-1 {_fmt(b['rank1'], True)}, rank-5 {_fmt(b['rank5'], True)}, "
        f"TAR {_fmt(b['tar'], True)} at distance {b['threshold']:.3f}; chance: rank-1 {_fmt(b['chance_rank1'], True)},"
        f" rank-5 {_fmt(b['chance_rank5'], True)}"
        + (f"; M-SVDD rejects {_fmt(b['rejected'], True)} of them (each against spheres fitted without it)"
           if "rejected" in b else "") + "</li>" for r, b in result.baseline.items()
    )
    def cell(c: dict | None) -> str:
        return f"{c['strength']:g} ({_fmt(c['psnr_face'])} dB)" if c else "never"

    cross = "".join(
        f"<tr><td>{html.escape(m)}</td>" + "".join(f"<td>{cell(c)}</td>" for c in rules.values()) + "</tr>"
        for m, rules in result.crossings(recs[0]).items()
    )
    protect = _protect_table(result)
    ex = "".join(f"<h3>{html.escape(m)}</h3><p>rows: strengths "
                 f"{', '.join(f'{s.strength:g}' for s in result.settings if s.method == m)}</p>"
                 f"<img src='{html.escape(f)}' alt='{html.escape(m)} examples'>" for m, f in examples.items())
    skipped = f"<p>No face found in: {html.escape(', '.join(result.skipped))}</p>" if result.skipped else ""
    sheet = (f"<h2>Contact sheet</h2><p>The first faces as they were, then each method at its weakest strength that "
             f"protects (else its strongest measured).</p><img src='{html.escape(sheet_name)}' alt='contact sheet'>"
             if sheet_name else "")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>deid evaluate</title>
<style>body{{font-family:sans-serif;max-width:1400px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}img{{max-width:100%}}</style></head><body>
<h1>Privacy and quality of each method</h1>
<p>{result.photos} photos of {result.identities} people from {html.escape(result.folder)}. Each anonymized face is
identified against the other originals (closed set); verification fixes the threshold at {result.far:g} false
accepts among the originals. "detected": the face detector still finds the face.</p>{skipped}
<ul>{base}</ul>
{protect}
<h2>Weakest strength at which identity is gone ({html.escape(recs[0])}), with the face PSNR there</h2>
<p>With few people, guessing already identifies 1 in (number of people): closed-set rank-1 then scatters around
chance and may never fall below 5%. Open-set rank-1 (nearest photo of the same person <em>and</em> within the
recognizer's match distance) is how a search system answers; its chance is near 0.</p>
<table><tr><th>method</th><th>rank-1 below 5%</th><th>rank-1 at most 2x chance</th><th>open-set rank-1 below 5%</th>
</tr>{cross}</table>
<img src="{html.escape(plot_name)}" alt="privacy against PSNR">
<h2>All settings</h2>
<table><tr><th>method</th><th>strength</th>{head}<th>protects</th><th>detected</th><th>PSNR face</th><th>SSIM face</th>
<th>PSNR image</th><th>SSIM image</th><th>detail</th><th>diversity ({html.escape(recs[0])})</th><th>yaw change</th>
<th>mouth change</th><th>tone change</th><th>landmarks found</th></tr>{''.join(body)}</table>
<p>What the face keeps: <em>detail</em> is the Laplacian variance of the face boxes, anonymized over original (1: as
much texture as the original); <em>diversity</em> the mean distance between the anonymized faces' embeddings over
the originals' (1: as varied as the people, 0: everyone became one person); the changes are the mean absolute
difference of yaw and mouth width (in eye distances, from the detector's landmarks, where it still finds the face)
and of the skin's mean colour (0-1) between each original and its anonymized face.</p>
{sheet}
<h2>Examples</h2>{ex}
</body></html>
"""


def _protect_table(result: Evaluation) -> str:
    """The section on the privacy rule: per method, the weakest strength that protects and the figures there."""
    sweep = (f"Each method's sweep runs from weak to strong and ends once {STOP_AFTER} settings in a row protect"
             " (stronger ones only cost time; <code>--full-sweep</code> runs all of them)."
             if not result.full_sweep else "Every strength of each sweep was measured (weak to strong).")
    half = "" if result.split == "all" else f" Only the <em>{html.escape(result.split)}</em> half of the people."
    intro = (f"<h2>Weakest strength that protects</h2><p>A strength protects when, {html.escape(PROTECT_RULE)}. "
             "The measured chance is the same rank-1 rule when each probe is given another person's anonymized "
             "face (a method that turns every face into one look sends them all to whoever resembles it, well "
             f"above 1 in the number of people). {sweep}{half}</p>")
    if not result.rule_measurable():
        return intro + "<p>Not judged: the rule needs both <code>--recognizer dlib,facenet</code>.</p>"
    recs = PROTECT_RECOGNIZERS
    head = "".join(f"<th>{r} rank-1</th><th>{r} measured chance</th><th>{r} open-set rank-1</th>" for r in recs)
    rows = []
    for m, c in result.protecting().items():
        if c is None:
            rows.append(f"<tr><td>{html.escape(m)}</td><td>never</td>" + "<td></td>" * (3 + 3 * len(recs)) + "</tr>")
            continue
        figs = "".join(f"<td>{_fmt(c[r]['rank1'], True)}</td><td>{_fmt(c[r]['chance_rank1'], True)}</td>"
                       f"<td>{_fmt(c[r]['rank1_open'], True)}</td>" for r in recs)
        rows.append(f"<tr><td>{html.escape(m)}</td><td>{c['strength']:g}</td>{figs}<td>{_fmt(c['detected'], True)}"
                    f"</td><td>{_fmt(c['psnr_face'])}</td><td>{_fmt(c['ssim_face'])}</td></tr>")
    return (intro + f"<table><tr><th>method</th><th>strength</th>{head}<th>detected</th><th>PSNR face</th>"
            f"<th>SSIM face</th></tr>{''.join(rows)}</table>")
