"""Self-contained reports: HTML (inline CSS and JS, no external URLs) for cells and surprisal, PNG for gradients.

Colours follow Karpathy, Johnson & Fei-Fei (2015): each character's background goes from blue (-1)
through white (0) to red (+1) with the unit's activation.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from rnnlab.analysis.cells import Recording, UnitScore
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
