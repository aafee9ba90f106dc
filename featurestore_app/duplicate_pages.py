"""The report's near-duplicates page: thumbnails of the top pairs of a ``featurestore
duplicates`` pairs CSV (Table 5 / Appendix H).

A pair names two images by dataset, split and sample id. The images are read back through the
dataset loaders from the roots recorded in the store entry's provenance (``dataset.root`` of
the entry of the pair's checkpoint and dataset, else of any entry of that dataset), so the page
shows what the detector actually compared. An image that cannot be read (root moved, file
deleted, dataset not in the store) is skipped with a note naming the reason; the page and its
data (``data/duplicates.csv``) are written either way.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from probes.analysis.duplicates import read_pairs

__all__ = ["DEFAULT_TOP", "THUMBNAIL_PX", "DuplicatePage", "duplicates_page"]

#: Pairs shown (highest similarity first).
DEFAULT_TOP = 24
#: Longest side of a thumbnail, in pixels.
THUMBNAIL_PX = 128


@dataclass
class DuplicatePage:
    """The page's HTML and its tidy data (one row per shown pair, with a ``note`` per side)."""

    html: str
    data: pd.DataFrame


class _Images:
    """Dataset loaders per (ckpt, dataset), built once from the store's provenance."""

    def __init__(self, store_url: str) -> None:
        from featurestore.store import FeatureStore

        self.store = FeatureStore(store_url, read_only=True)
        self.entries = self.store.entries()
        self.loaders: dict[tuple[str, str], Any] = {}

    def _loader(self, ckpt: str, dataset: str) -> Any:
        key = (ckpt, dataset)
        if key in self.loaders:
            return self.loaders[key]
        infos = sorted((e for e in self.entries if e.dataset == dataset),
                       key=lambda e: e.ckpt != ckpt)  # the pair's own entry first
        if not infos:
            raise LookupError(f"no entry of dataset {dataset!r} in the store")
        from featurestore.datasets import get_dataset

        prov = infos[0].provenance.get("dataset") or {}
        loader = get_dataset(str(prov.get("name") or dataset), prov.get("root"),
                             seed=int(prov.get("seed") or 0))
        self.loaders[key] = loader
        return loader

    def thumbnail(self, ckpt: str, dataset: str, sample_id: str) -> str:
        """A ``data:image/png`` URI of the image; raises with the reason when unreadable."""
        image = self._loader(ckpt, dataset).read(sample_id)
        image = image.convert("RGB")
        image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        if max(image.size) < THUMBNAIL_PX // 2:  # tiny images (digits: 8 px) shown larger
            scale = THUMBNAIL_PX // max(image.size)
            image = image.resize((image.width * scale, image.height * scale), 0)
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _cell(images: _Images, ckpt: str, dataset: str, split: str,
          sample_id: str) -> tuple[str, str]:
    """(HTML of one side of a pair, note: "" when shown, else why not)."""
    label = html.escape(f"{dataset}/{split}/{sample_id}")
    try:
        uri = images.thumbnail(ckpt, dataset, sample_id)
    except Exception as exc:  # any unreadable image is a note on the page, never a failure
        note = f"not readable: {type(exc).__name__}: {exc}".splitlines()[0][:300]
        return f'<div class="miss">{label}<br><small>{html.escape(note)}</small></div>', note
    return f'<img src="{uri}" alt="{label}" title="{label}"><br><small>{label}</small>', ""


def duplicates_page(store_url: str, pairs_path: Path | str, top: int = DEFAULT_TOP
                    ) -> DuplicatePage:
    """The near-duplicates page for ``pairs_path`` (highest similarity first, ``top`` pairs)."""
    rows = read_pairs(Path(pairs_path))
    rows.sort(key=lambda r: -float(r.get("similarity") or 0.0))
    shown = rows[:top]
    images = _Images(store_url)
    body, data = [], []
    for i, r in enumerate(shown, start=1):
        ckpt = r.get("ckpt", "")
        q_html, q_note = _cell(images, ckpt, r["query_dataset"], r["query_split"], r["query_id"])
        m_html, m_note = _cell(images, ckpt, r["match_dataset"], r["match_split"], r["match_id"])
        body.append(f"<tr><td>{i}</td><td>{float(r['similarity']):.4f}</td>"
                    f"<td>{q_html}</td><td>{m_html}</td></tr>")
        data.append({"source": "store", "rank": i, **{k: r.get(k) for k in r},
                     "query_note": q_note, "match_note": m_note})
    skipped = sum(bool(d["query_note"]) + bool(d["match_note"]) for d in data)
    note = (f"<p class=\"miss\">{skipped} image(s) could not be read and are shown as a note "
            "(the dataset root recorded in the store's provenance is not readable here).</p>"
            if skipped else "")
    threshold = shown[0].get("threshold", "") if shown else ""
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Near-duplicate images</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}
td{{padding:.3em;vertical-align:top;text-align:center}} .miss{{color:#b00}}
img{{image-rendering:pixelated}}</style></head>
<body><h1>Near-duplicate images (Table 5, Appendix H)</h1>
<p>Source: store. The top {len(shown)} of {len(rows)} pairs in
<code>{html.escape(str(pairs_path))}</code> (cosine similarity of L2-normalised cached
features{', threshold ' + html.escape(str(threshold)) if threshold else ''}), images read from
the dataset roots recorded in the store's provenance. Data: <code>data/duplicates.csv</code>.</p>
{note}
<table><tr><th>#</th><th>similarity</th><th>query</th><th>match</th></tr>
{chr(10).join(body)}
</table></body></html>
"""
    columns = ["source", "rank", "query_dataset", "query_split", "query_id", "match_dataset",
               "match_split", "match_id", "similarity", "ckpt", "threshold", "query_note",
               "match_note"]
    return DuplicatePage(page, pd.DataFrame(data, columns=columns))
