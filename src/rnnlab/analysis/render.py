"""Self-contained reports: HTML (inline CSS and JS, no external URLs) for cells, surprisal and dynamics, PNG for
gradients and dynamics.

Colours follow Karpathy, Johnson & Fei-Fei (2015): each character's background goes from blue (-1)
through white (0) to red (+1) with the unit's activation.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from rnnlab.analysis.cells import Recording, UnitScore
from rnnlab.analysis.dynamics import EDGE_BAND, DynamicsProbe, MachineReport, regime, threshold
from rnnlab.analysis.gradients import GradientProbe
from rnnlab.analysis.surprisal import CharSurprisal

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:70em;color:#222}
.text{font-family:ui-monospace,monospace;font-size:13px;white-space:pre-wrap;line-height:1.45;
border:1px solid #ddd;padding:.5em;max-height:22em;overflow:auto}
.text span{border-radius:2px}
h2{margin-top:1.6em;font-size:1.15em} .units a{margin-right:1em;cursor:pointer;color:#0645ad}
.legend{font-size:12px;color:#555} code{background:#f4f4f4;padding:0 .2em}
"""

_CELLS_JS = """
const D=JSON.parse(document.getElementById('data').textContent);
const Q={};for(const L of D.layers){const b=atob(L.q);const a=new Int8Array(b.length);
for(let i=0;i<b.length;i++)a[i]=(b.charCodeAt(i)<<24)>>24;Q[L.name]=a;}
function values(layer,unit){const L=D.layers.find(l=>l.name===layer);if(!L||unit<0||unit>=L.units)return null;
const T=D.text.length,a=Q[layer],s=L.scales[unit],out=new Float32Array(T);
for(let t=0;t<T;t++){const v=a[unit*T+t]/127*s;out[t]=layer[0]==='c'?Math.tanh(v):v;}return out;}
function colour(v){v=Math.max(-1,Math.min(1,v));const w=Math.round(255*(1-0.8*Math.abs(v)));
return v>=0?`rgb(255,${w},${w})`:`rgb(${w},${w},255)`;}
function esc(c){return c==='&'?'&amp;':c==='<'?'&lt;':c==='>'?'&gt;':c==='\\n'?'\\u21b5\\n':c;}
function paint(el,layer,unit){const v=values(layer,unit);if(!v){el.textContent='no such unit';return;}
const chars=Array.from(D.text);let h='';for(let t=0;t<chars.length;t++)
h+=`<span style="background:${colour(v[t])}" title="${v[t].toFixed(3)}">${esc(chars[t])}</span>`;el.innerHTML=h;}
document.querySelectorAll('[data-layer]').forEach(el=>paint(el,el.dataset.layer,+el.dataset.unit));
const sel=document.getElementById('layer'),num=document.getElementById('unit');
for(const L of D.layers){const o=document.createElement('option');o.value=L.name;
o.textContent=`${L.name} (${L.units} units)`;sel.append(o);}
function show(){paint(document.getElementById('explore'),sel.value,+num.value);}
sel.onchange=show;num.oninput=show;
document.querySelectorAll('.units a').forEach(a=>a.onclick=()=>{sel.value=a.dataset.l;num.value=a.dataset.u;show();
document.getElementById('explorer').scrollIntoView();});
show();
"""


def _quantise(acts: np.ndarray) -> tuple[str, list[float]]:
    """(T, H) activations -> base64 int8 unit-major (H, T) and per-unit scales (value = q / 127 * scale)."""
    scales = np.maximum(np.abs(acts).max(axis=0), 1e-8)
    q = np.round(acts / scales * 127).astype(np.int8).T.copy()
    return base64.b64encode(q.tobytes()).decode("ascii"), [float(s) for s in scales]


def cells_html(recording: Recording, ranking: dict[str, list[UnitScore]], title: str = "rnnlab probe cells") -> str:
    """The cell report: for each feature its best units over the text, then an explorer for any unit."""
    layers = []
    for name, acts in recording.activations.items():
        q, scales = _quantise(acts)
        layers.append({"name": name, "units": acts.shape[1], "q": q, "scales": scales})
    data = json.dumps({"text": recording.text, "layers": layers}).replace("</", "<\\/")
    sections = []
    for feature, scores in ranking.items():
        if not scores:
            sections.append(f"<h2>{html.escape(feature)}</h2><p>constant on this text; nothing to correlate.</p>")
            continue
        best = scores[0]
        links = " ".join(
            f'<a data-l="{s.layer}" data-u="{s.unit}">{s.layer}[{s.unit}] r={s.r:+.3f}</a>' for s in scores
        )
        sections.append(
            f"<h2>{html.escape(feature)}: best unit {best.layer}[{best.unit}], r = {best.r:+.3f}</h2>"
            f'<div class="units">{links}</div>'
            f'<div class="text" data-layer="{best.layer}" data-unit="{best.unit}"></div>'
        )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="legend">Background: activation after reading each character, blue −1, white 0, red +1
(cell states <code>c</code> shown as tanh(c)). Units ranked by |Pearson r| with each feature over
{len(recording.text)} characters. Hover a character for its value; click a unit to explore it.</p>
{"".join(sections)}
<h2 id="explorer">Any unit</h2>
<p>layer <select id="layer"></select> unit <input id="unit" type="number" min="0" value="0" style="width:5em"></p>
<div class="text" id="explore"></div>
<script type="application/json" id="data">{data}</script>
<script>{_CELLS_JS}</script></body></html>
"""


def surprisal_html(chars: list[CharSurprisal], title: str = "rnnlab probe surprisal", max_bits: float = 10.0) -> str:
    """Text coloured white (0 bits) to red (`max_bits` or more); each character's title shows its top guesses."""
    spans = []
    scored = [c.bits for c in chars if c.bits is not None]
    for c in chars:
        shown = "\u21b5\n" if c.char == "\n" else c.char
        if c.bits is None:
            spans.append(f'<span title="first character: no context">{html.escape(shown)}</span>')
            continue
        w = round(255 * (1 - min(c.bits / max_bits, 1.0)))
        guesses = "\n".join(f"{g!r} {p:.3f}" for g, p in c.top)
        tip = html.escape(f"{c.char!r}: {c.bits:.2f} bits\n{guesses}", quote=True)
        spans.append(f'<span style="background:rgb(255,{w},{w})" title="{tip}">{html.escape(shown)}</span>')
    mean = sum(scored) / len(scored) if scored else float("nan")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_STYLE}.text{{max-height:none}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="legend">Surprisal −log₂ p(character | text before it): white 0 bits, red ≥ {max_bits:g} bits.
Mean {mean:.3f} bits per character over {len(scored)} characters. Hover a character for the model's top predictions.</p>
<div class="text">{"".join(spans)}</div></body></html>
"""


def gradients_png(probe: GradientProbe, out: Path) -> None:
    """Two panels: ‖∂L_T/∂h_{T-k}‖ against k for each model, and for the rnn-tanh spectral-radius sweep."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, n in probe.norms.items():
        axes[0].semilogy(np.arange(len(n)), n, label=name)
    axes[0].set(title="Gradient of the last loss through time", xlabel="k (steps back from T)")
    axes[0].set_ylabel("‖∂L_T/∂h_{T−k}‖")
    for rho, n in probe.sweep.items():
        axes[1].semilogy(np.arange(len(n)), n, label=f"ρ(W_hh) = {rho:g}")
    axes[1].set(title="Untrained rnn-tanh: spectral radius of W_hh", xlabel="k (steps back from T)")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


# `rnnlab probe dynamics`: one PNG of nine panels, and an HTML report that embeds it beside the tables.

_KINDS = {
    "stable": ("o", "#1f77b4"),
    "saddle": ("^", "#ff7f0e"),
    "unstable": ("X", "#d62728"),
    "marginal": ("D", "#2ca02c"),
}


def _principal_plane(probe: DynamicsProbe) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mean (S,), the first two principal directions (2, S) of the visited states, and their variance shares."""
    X = probe.visited.reshape(-1, probe.visited.shape[-1])
    mean = X.mean(0)
    _, s, Vt = np.linalg.svd(X - mean, full_matrices=False)
    share = s**2 / max(float((s**2).sum()), 1e-300)
    if Vt.shape[0] < 2:  # one unit: the second direction is empty
        Vt, share = np.vstack([Vt, np.zeros_like(Vt)]), np.append(share, 0.0)
    return mean, Vt[:2], share[:2]


def _machine_diagram(ax: object, report: MachineReport) -> None:
    """States on a circle (accepting ones ringed twice, the start marked by an arrow), edges labelled by symbols."""
    from matplotlib.patches import Circle, FancyArrowPatch

    m = report.extraction.machine
    angles = np.pi - 2 * np.pi * np.arange(m.size) / m.size
    pos = np.stack([np.cos(angles), np.sin(angles)], 1) if m.size > 1 else np.zeros((1, 2))
    r = 0.2
    nodes = []
    for q, (x, y) in enumerate(pos):
        node = Circle((x, y), r, fill=True, fc="#eef4fb", ec="#333", lw=1.2, zorder=3)
        ax.add_patch(node)
        nodes.append(node)
        if m.output[q]:
            ax.add_patch(Circle((x, y), r * 0.8, fill=False, ec="#333", lw=1.0, zorder=4))
        ax.text(x, y, str(q), ha="center", va="center", fontsize=11, zorder=5)
    sx, sy = pos[m.start]
    ax.annotate("", (sx, sy + r), (sx, sy + r + 0.4), arrowprops={"arrowstyle": "->", "lw": 1.5})  # loops go outward
    edges: dict[tuple[int, int], list[str]] = {}
    for q in range(m.size):
        for a, symbol in enumerate(m.symbols):
            edges.setdefault((q, int(m.delta[q, a])), []).append(symbol)
    for (q, p), symbols in edges.items():
        label = ",".join(symbols)
        if q == p:  # a loop, drawn outside the circle
            out = pos[q] / (np.linalg.norm(pos[q]) or 1.0) if m.size > 1 else np.array([0.0, 1.0])
            centre = pos[q] + out * (r * 1.6)
            ax.add_patch(Circle(tuple(centre), r * 0.7, fill=False, ec="#555", lw=1.0, zorder=2))
            ax.text(*(centre + out * r * 1.2), label, ha="center", va="center", fontsize=9, color="#a33")
            continue
        ax.add_patch(FancyArrowPatch(tuple(pos[q]), tuple(pos[p]), patchA=nodes[q], patchB=nodes[p],
                                     connectionstyle="arc3,rad=0.2", arrowstyle="-|>", mutation_scale=12,
                                     lw=1.0, color="#555", zorder=2))  # fmt: skip
        middle, along = (pos[q] + pos[p]) / 2, pos[p] - pos[q]
        normal = np.array([along[1], -along[0]]) / (np.linalg.norm(along) or 1.0)
        ax.text(*(middle + 0.22 * normal * np.linalg.norm(along) / 2 + 0.05 * normal), label,
                ha="center", va="center", fontsize=9, color="#a33")  # fmt: skip
    ax.set_xlim(-1.8, 1.8)
    ax.set_ylim(-1.8, 1.8)
    ax.set_aspect("equal")
    ax.axis("off")
    verdict = "= true machine" if report.equivalent else "≠ true machine"
    ax.set_title(f"{report.name}: {m.size} states ({verdict})\nmachine {report.machine_accuracy:.1%}, network "
                 f"{report.network_accuracy:.1%} at length {report.test_length}", fontsize=10)  # fmt: skip


def dynamics_png(probe: DynamicsProbe) -> bytes:
    """Fixed points on the trajectories' principal plane, their eigenvalues, the Lyapunov sweep, the planar
    oscillation and point attractor, the machines' agreement against k, and up to three machines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 3, figsize=(15, 14))
    mean, V, share = _principal_plane(probe)
    ax = axes[0, 0]
    path = (probe.visited[0] - mean) @ V.T
    ax.plot(path[:, 0], path[:, 1], color="#bbb", lw=0.6, label=f"states on {probe.drive}")
    for n, settle in enumerate(probe.settling):
        line = (settle - mean) @ V.T
        label = f"then {probe.symbol!r} alone" if n == 0 else None
        ax.plot(line[:, 0], line[:, 1], color="#7aa6d6", lw=1.0, label=label)
    for kind, (marker, colour) in _KINDS.items():
        chosen = [p for p in probe.points if p.kind == kind]
        if chosen:
            xy = (np.stack([p.h for p in chosen]) - mean) @ V.T
            fixed = [p.status == "fixed" for p in chosen]
            label = f"{kind} ({sum(fixed)} fixed, {len(chosen) - sum(fixed)} not)"
            ax.scatter(xy[:, 0], xy[:, 1], marker=marker, s=70, edgecolor=colour, lw=1.5, zorder=5,
                       facecolor=[colour if f else "none" for f in fixed], label=label)  # fmt: skip
    ax.set(xlabel=f"PC1 ({share[0]:.0%} of variance)", ylabel=f"PC2 ({share[1]:.0%})")
    ax.set_title(f"Fixed (filled) and slow points under {probe.symbol!r}\n{probe.network}", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    theta = np.linspace(0, 2 * np.pi, 200)
    ax.plot(np.cos(theta), np.sin(theta), color="#888", lw=0.8)
    for i, p in enumerate(probe.points[:6]):
        marker, _ = _KINDS[p.kind]
        ax.scatter(p.eigenvalues.real, p.eigenvalues.imag, s=18, marker=marker, alpha=0.7,
                   label=f"#{i} {p.kind}, {p.status}")  # fmt: skip
    ax.set(xlabel="Re λ", ylabel="Im λ", aspect="equal")
    ax.set_title("Eigenvalues of ∂F/∂h at the points (unit circle: |λ| = 1)", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[0, 2]
    for name, sweep in probe.sweeps.items():
        rhos = sorted(sweep)
        ax.plot(rhos, [sweep[r] for r in rhos], "o-", label=name)
        crossing = threshold(sweep)
        if crossing is not None:
            ax.axvline(crossing, ls="--", lw=0.8, color=ax.lines[-1].get_color())
    ax.axhline(0, color="#333", lw=0.8)
    ax.axhspan(-EDGE_BAND, EDGE_BAND, color="#ddd", alpha=0.6, label="edge of chaos")
    ax.set(xlabel="spectral radius ρ of W_hh", ylabel="largest Lyapunov exponent (nats/step)")
    ax.set_title(f"Random {probe.sweep_sizes}: ordered → chaotic\nprobed network on {probe.drive}: "
                 f"λ = {probe.exponent:+.3f}", fontsize=10)  # fmt: skip
    ax.legend(fontsize=8)
    for ax, (name, example) in zip(axes[1, :2], probe.examples.items(), strict=True):
        for path in example.trajectories:
            ax.plot(path[:, 0], path[:, 1], ".-", ms=3, lw=0.7)
            ax.plot(*path[0], "k+", ms=8)
        ax.plot(0, 0, "kx")
        ax.set(xlim=(-1.05, 1.05), ylim=(-1.05, 1.05), aspect="equal", xlabel="h1", ylabel="h2")
        w = example.W
        ax.set_title(f"{name}: h' = tanh(W h), W = [[{w[0, 0]:.2f}, {w[0, 1]:.2f}], [{w[1, 0]:.2f}, "
                     f"{w[1, 1]:.2f}]]\nλ = {example.exponent:+.4f}", fontsize=10)  # fmt: skip
    ax = axes[1, 2]
    for report in probe.machines:
        ks = sorted(report.extraction.agreement)
        ax.plot(ks, [report.extraction.agreement[k] for k in ks], "o-", label=report.name)
        ax.plot(report.extraction.k, report.extraction.agreement[report.extraction.k], "k*", ms=12)
    ax.set(xlabel="k (clusters of hidden states)", ylabel="agreement with the network (held out)", ylim=(0, 1.05))
    ax.set_title("Choosing k (★: the k kept)", fontsize=10)
    if probe.machines:
        ax.legend(fontsize=8)
    for i, ax in enumerate(axes[2]):
        if i < len(probe.machines):
            _machine_diagram(ax, probe.machines[i])
        else:
            ax.axis("off")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


def _table(head: list[str], rows: list[list[str]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def dynamics_html(probe: DynamicsProbe, png: bytes, title: str = "rnnlab probe dynamics") -> str:
    """The report: the figure, then the fixed points, the exponents and the machines as tables."""
    mean, V, _ = _principal_plane(probe)
    points = []
    for i, p in enumerate(probe.points[:40]):
        pc = (p.h - mean) @ V.T
        modulus = float(np.abs(p.eigenvalues).max()) if len(p.eigenvalues) else float("nan")
        points.append([str(i), p.status, p.kind, f"{p.speed:.2e}", f"{modulus:.4f}", str(p.unstable_directions),
                       f"{pc[0]:+.3f}", f"{pc[1]:+.3f}"])  # fmt: skip
    fixed = sum(p.status == "fixed" for p in probe.points)
    names = list(probe.sweeps)
    rhos = sorted(next(iter(probe.sweeps.values())))
    sweep_rows = [
        [f"{r:g}"] + [f"{probe.sweeps[n][r]:+.3f} ({regime(probe.sweeps[n][r])})" for n in names] for r in rhos
    ]
    crossings = ", ".join(
        f"{html.escape(n)}: {'ρ ≈ ' + format(t, '.2f') if (t := threshold(probe.sweeps[n])) is not None else 'none'}"
        for n in names
    )
    examples = _table(
        ["example", "W", "largest Lyapunov exponent"],
        [[html.escape(n), np.array2string(e.W, precision=3, separator=", "), f"{e.exponent:+.4f}"]
         for n, e in probe.examples.items()],
    )  # fmt: skip
    machines = []
    for m in probe.machines:
        auto = m.extraction.machine
        rows = [
            [("→ " if q == auto.start else "") + str(q), str(int(auto.output[q]))]
            + [str(int(auto.delta[q, a])) for a in range(len(auto.symbols))]
            for q in range(auto.size)
        ]
        verdict = (
            "equivalent to the true machine on every string"
            if m.equivalent
            else f"differs from the true machine, first on {html.escape(''.join(m.counterexample or []))!r}"
        )
        machines.append(
            f"<h3>{html.escape(m.name)}</h3><p>{html.escape(m.training)}; k = {m.extraction.k} clusters "
            f"(chosen by agreement on held-out strings), {auto.size} states after minimisation, the true minimal "
            f"machine has {m.truth.size}: {verdict}. On strings of length {m.test_length}: network "
            f"{m.network_accuracy:.2%}, extracted machine {m.machine_accuracy:.2%} correct per symbol.</p>"
            + _table(["state", "output"] + [f"on {s!r}" for s in auto.symbols], rows)
        )
    figure = base64.b64encode(png).decode("ascii")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_STYLE}table{{border-collapse:collapse;font-size:13px;margin:.5em 0}}
td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:right}} img{{max-width:100%}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p><img alt="dynamics figure" src="data:image/png;base64,{figure}"></p>
<h2 id="fixed-points">Fixed and slow points of {html.escape(probe.network)} under {html.escape(repr(probe.symbol))}</h2>
<p class="legend">Minima of q(h) = ½‖F(h) − h‖² from {len(probe.visited.reshape(-1, probe.visited.shape[-1]))} visited
states (Sussillo &amp; Barak 2013). Fixed: speed ‖F(h) − h‖ &lt; 1e-6; slow: &lt; 1e-2; moving: the slowest point found
where none is slow. Stable: every |λ| of ∂F/∂h below 1; saddle: some above; unstable: all above; marginal: none
above, some at 1. {fixed} fixed point(s) of {len(probe.points)} listed.</p>
{_table(["#", "status", "kind", "speed", "max |λ|", "unstable directions", "PC1", "PC2"], points)}
<h2 id="lyapunov">Largest Lyapunov exponent</h2>
<p>{html.escape(probe.network)} on {html.escape(probe.drive)}: <b>{probe.exponent:+.4f}</b> nats per step
({regime(probe.exponent)}). A tangent vector pushed by the Jacobian and renormalised every step (Benettin et al.
1980).</p>
<p>Random {html.escape(probe.sweep_sizes)} with W_hh scaled to spectral radius ρ; the exponent first turns positive
at {crossings}. Ordered below −{EDGE_BAND}, chaotic above +{EDGE_BAND}.</p>
{_table(["ρ"] + [html.escape(n) for n in names], sweep_rows)}
<h2 id="examples">Oscillation and a point attractor</h2>
{examples}
<h2 id="automata">State machines</h2>
<p class="legend">Output 1: accept (parity, no-aaa), both bits 1 (repeated-ones), sum bit (addition). Hidden states
clustered by k-means; a cluster's transition on a symbol is where most of its states
go, its output what most of them output; minimised by Moore's partition refinement; compared with the true machine
by a search over pairs of states (all strings).</p>
{"".join(machines) or "<p>none</p>"}
</body></html>
"""
