"""The report page: one HTML document with inline CSS and inline SVG, no scripts, no external resources.

:func:`render_page` turns a :class:`~distlda.report.data.ReportData` into the
page's text. Every string from the model (words, facts, the title) is escaped
where it is inserted; the page refers to no URL, so it opens offline and from
an e-mail attachment alike.
"""

from __future__ import annotations

import math

import numpy as np

from distlda import __version__
from distlda.report.data import ReportData
from distlda.report.layout import topic_map_svg
from distlda.report.svg import (
    COHERENCE_COLOR,
    column_chart,
    esc,
    fmt_num,
    hbar_chart,
    line_chart,
)

__all__ = ["render_page"]

CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:#222;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,
Arial,sans-serif}
main{max-width:1240px;margin:0 auto;padding:20px 24px 40px}
h1{font-size:26px;margin:8px 0 4px}
h2{font-size:19px;margin:0 0 10px}
h3{font-size:15px;margin:0}
a{color:#2b5d9b;text-decoration:none}
a:hover{text-decoration:underline}
.sub{color:#666;margin:0 0 16px}
.card{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:14px 16px;margin:0 0 18px}
.facts{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:14px;margin:0 0 18px}
.facts .card{margin:0}
dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 12px;margin:0}
dt{color:#666}
dd{margin:0;font-variant-numeric:tabular-nums;overflow-wrap:anywhere}
nav{margin:0 0 18px;display:flex;flex-wrap:wrap;gap:6px 16px}
.note{color:#666;font-style:italic;margin:4px 0}
.topics{display:grid;grid-template-columns:repeat(auto-fill,minmax(290px,1fr));gap:12px}
.topic{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:10px 10px 6px;scroll-margin-top:8px}
.topic:target{outline:3px solid #f58518}
.meta{color:#555;font-size:12px;margin:2px 0 4px}
footer{color:#888;font-size:12px;margin-top:24px}
"""


def _facts_card(heading: str, facts: list[tuple[str, str]]) -> str:
    if not facts:
        return ""
    rows = "".join(f"<dt>{esc(label)}</dt><dd>{esc(value)}</dd>" for label, value in facts)
    return f'<section class="card"><h2>{esc(heading)}</h2><dl>{rows}</dl></section>'


def _topic_tip(data: ReportData, t: int, extra: str) -> str:
    return f"topic {t} ({extra}): {', '.join(data.words[t][:6])}"


def _sizes_section(data: ReportData) -> str:
    order = sorted(range(data.num_topics), key=lambda t: (-data.sizes[t], t))
    chart = column_chart(
        [str(t) for t in order], [float(data.sizes[t]) for t in order],
        titles=[_topic_tip(data, t, f"{fmt_num(data.sizes[t] * 100)}% of tokens") for t in order],
        hrefs=[f"#topic-{t}" for t in order], y_label="share of tokens", percent=True,
        aria_label="topic sizes")
    return ('<section class="card" id="sizes"><h2>Topic sizes</h2>'
            '<p class="sub">Share of the corpus\u2019s tokens assigned to each topic (row sums of the sufficient '
            'statistics), largest first. Click a bar to see its topic.</p>' + chart + "</section>")


def _perplexity_note(data: ReportData) -> str:
    """What the perplexity means, with the uniform model's numbers for comparison."""
    last, v = data.history[-1], data.num_terms
    perp = fmt_num(last.perplexity, 4) if math.isfinite(last.perplexity) else "\u221e"
    ratio = ""
    if math.isfinite(last.perplexity) and last.perplexity > 0:
        times = v / last.perplexity
        ratio = (f" This model\u2019s is {fmt_num(times, 2)}\u00d7 lower." if times >= 1 else
                 f" This model\u2019s is {fmt_num(1 / times, 2)}\u00d7 higher.")
    return (f"<p>Perplexity is exp(\u2212bound per word): {esc(perp)} for the last bound of "
            f"{esc(fmt_num(last.bound, 5))} nats. For comparison, a model that gives each of the {v:,} words of "
            f"the vocabulary the same probability 1/{v:,} scores {esc(fmt_num(-math.log(v), 4))} nats per word, a "
            f"perplexity of exactly {v:,}.{ratio} The held-out perplexity can exceed the vocabulary size for two "
            "reasons: it comes from a lower bound on the log-likelihood (the bound also pays for fitting each "
            "held-out document\u2019s topic mixture from that document alone), so it overstates the model\u2019s "
            f"true perplexity; and a held-out document may use words its topics make rarer than 1/{v:,}. Compare "
            "bounds of one model over training, or of models scored on the same held-out documents and "
            "vocabulary.</p>")


def _pass_note(data: ReportData, in_passes: bool) -> str:
    """Why the bound dips where a pass ends, when the last mini-batch of a pass is a short one."""
    if not any(p.pass_end for p in data.history):
        return ""
    tail = ""
    n, size = data.train_documents, data.chunksize
    if n and size and n % size and n > size:
        tail = (f" Here {n:,} training documents in mini-batches of {size:,} leave {n % size:,} for the "
                "last mini-batch of each pass.")
    where = "at whole passes, on dotted lines" if in_passes else "at the ends of passes"
    return (f'<p>Orange diamonds are the evaluations {where}, joined by their own line. A pass\u2019s last '
            "mini-batch, when it holds fewer documents than the others, moves the topics as far as a full one "
            "on less evidence, so the bound may dip there and recover during the next pass: to see the trend, "
            f"compare pass ends with pass ends.{tail}</p>")


def _history_section(data: ReportData) -> str:
    head = '<section class="card" id="heldout"><h2>Held-out bound during training</h2>'
    if not data.history:
        return head + ('<p class="note">No training history is recorded with this model (it is written by '
                       '<code>distlda train</code> when a held-out part of the corpus exists).</p></section>')
    last = data.history[-1]
    perp = fmt_num(last.perplexity, 4) if math.isfinite(last.perplexity) else "\u221e"
    per_pass = data.train_documents
    in_passes = bool(per_pass) and any(p.pass_end for p in data.history)
    xs = [p.documents / per_pass if in_passes else p.documents for p in data.history]
    tips = [f"{fmt_num(p.documents, 6)} documents{' (end of a pass)' if p.pass_end else ''}: bound "
            f"{fmt_num(p.bound, 5)}, perplexity {fmt_num(p.perplexity, 4)}" for p in data.history]
    marks = range(1, math.ceil(max(xs)) + 1) if in_passes else ()
    chart = line_chart(xs, [p.bound for p in data.history], point_titles=tips,
                       highlight=[p.pass_end for p in data.history], x_marks=marks,
                       x_label=f"passes over the {per_pass:,} training documents" if in_passes else "documents seen",
                       y_label="per-word bound (nats)", aria_label="held-out per-word bound across training")
    return head + (f'<p class="sub">Per-word variational bound of the held-out documents (higher is better) '
                   f'after each evaluation. Last: {esc(fmt_num(last.bound, 5))} nats per word, perplexity '
                   f'{esc(perp)}, after {esc(fmt_num(last.documents, 6))} documents.</p>' + chart
                   + f'<div class="sub">{_pass_note(data, in_passes)}{_perplexity_note(data)}</div></section>')


def _coherence_section(data: ReportData) -> str:
    head = '<section class="card" id="coherence"><h2>Coherence per topic</h2>'
    if data.coherence is None:
        return head + '<p class="note">No coherence is recorded with this model.</p></section>'
    scores = data.coherence
    order = sorted(range(data.num_topics), key=lambda t: (not np.isfinite(scores[t]), -np.nan_to_num(scores[t]), t))
    chart = column_chart(
        [str(t) for t in order], [float(scores[t]) for t in order],
        titles=[_topic_tip(data, t, f"u_mass {fmt_num(scores[t], 4)}") for t in order],
        hrefs=[f"#topic-{t}" for t in order], y_label="u_mass", color=COHERENCE_COLOR,
        aria_label="coherence per topic")
    return head + ('<p class="sub">u_mass coherence of each topic\u2019s top words on the training corpus '
                   '(closer to 0 is more coherent), most coherent first.</p>' + chart + "</section>")


def _map_section(data: ReportData) -> str:
    chart = topic_map_svg(data.coords, data.sizes, data.words)
    return ('<section class="card" id="map"><h2>Map of topics</h2>'
            '<p class="sub">Topics placed so that their distances approximate the Jensen\u2013Shannon distances '
            'between their word distributions (classical multidimensional scaling); circle area is '
            'proportional to topic size. Nearby topics share words. Click a circle to see its topic.</p>'
            + chart + "</section>")


def _topic_card(data: ReportData, t: int) -> str:
    meta = [f"{fmt_num(data.sizes[t] * 100)}% of tokens"]
    if data.coherence is not None:
        meta.append(f"coherence {fmt_num(data.coherence[t], 4)}")
    chart = hbar_chart(data.words[t], data.probs[t], value_digits=2, aria_label=f"top words of topic {t}")
    line = esc(" \u00b7 ".join(meta))
    return (f'<section class="topic" id="topic-{t}"><h3><a href="#topic-{t}">Topic {t}</a></h3>'
            f'<p class="meta">{line}</p>{chart}</section>')


def render_page(data: ReportData, title: str | None = None) -> str:
    """The whole report as HTML text.

    Parameters
    ----------
    data : ReportData
        What to show (see :func:`distlda.report.data.collect`).
    title : str, optional
        Page title (default: "Topic model report").

    Returns
    -------
    str
    """
    title = title or "Topic model report"
    k = data.num_topics
    nav = "".join(f'<a href="#{anchor}">{label}</a>' for anchor, label in (
        ("sizes", "Topic sizes"), ("heldout", "Held-out bound"), ("coherence", "Coherence"),
        ("map", "Map of topics"), ("topics", f"All {k} topics")))
    facts = "".join(_facts_card(h, f) for h, f in (("Model", data.model_facts), ("Corpus", data.corpus_facts),
                                                   ("Training", data.training_facts)))
    cards = "".join(_topic_card(data, t) for t in range(k))
    words_per_topic = len(data.words[0]) if data.words else 0
    body = (f"<main><header><h1>{esc(title)}</h1>"
            f'<p class="sub">LDA model with {k:,} topic{"s" if k != 1 else ""} over a vocabulary of '
            f"{data.num_terms:,} words.</p></header>"
            f'<div class="facts">{facts}</div><nav>{nav}</nav>'
            f"{_sizes_section(data)}{_history_section(data)}{_coherence_section(data)}{_map_section(data)}"
            f'<section id="topics"><h2>Topics</h2><p class="sub">The {words_per_topic} most probable words of '
            f'each topic with their probabilities.</p><div class="topics">{cards}</div></section>'
            f"<footer>Written by distlda {esc(__version__)}. This page is self-contained: it needs no network "
            f"access and no scripts.</footer></main>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>{body}</body></html>\n")
