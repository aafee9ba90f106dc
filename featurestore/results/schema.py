"""The one results contract: what a row of the results table holds, and how curves are written.

Every writer (the linear probes in :mod:`probes.linear.sweep`; fine-tuning, from-scratch,
logistic regression with augmentation and the data-size study in :mod:`probes.finetune.run`)
builds a :class:`ResultRow` and hands it to :meth:`featurestore.results.ResultsTable.append`;
every reader (the analysis tables, figures, notebooks, the service and the CSV/JSON export)
gets rows that went through :meth:`ResultRow.from_record`. One definition, so a writer and a
reader can no longer disagree on a field's shape (they once did on ``curve_steps``, which left
Figure 8 without any fine-tuning result).

Curve formats
-------------
* ``curve_steps`` (:data:`CURVE_STEPS_FORMAT`): the training curve of the chosen run as
  ``[[step, val_metric], ...]`` pairs in step order, the shape
  :func:`probes.stats.steps_to_fraction_of_max_odds` takes as it is. Old rows wrote dicts
  (``{"step": s, "val_metric": v}``, or the trainer's ``{"steps": s, "accuracy": a}``); both
  still read (:func:`parse_curve_steps`).
* ``val_curve``: one dict per hyperparameter grid point in grid order. Linear probes:
  ``param``, ``val_metric`` and solver diagnostics; fine-tuning: the grid point's fields,
  ``val_metric`` and its own ``curve``.

Old rows (written before this module) read unchanged: missing fields take their defaults, a
data-size variant ``k=K,subset_seed=S`` without a ``subset`` field gets one, and fields this
module does not name are kept in :attr:`ResultRow.extra`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = [
    "CURVE_STEPS_FORMAT",
    "SETTINGS",
    "FeatureSource",
    "ResultRow",
    "RowFormatError",
    "Subset",
    "parse_curve_steps",
    "parse_variant",
    "subset_variant",
]

#: The settings of the results table (the paper's five ways of using a checkpoint).
SETTINGS: tuple[str, ...] = ("logreg", "svm", "logreg_aug", "finetune", "scratch")
CURVE_STEPS_FORMAT = "[[step, val_metric], ...] in step order"
_VARIANT_PART = re.compile(r"^\s*([A-Za-z_]\w*)\s*=\s*([^,]*?)\s*$")


class RowFormatError(ValueError):
    """A result row that misses a required field or holds one of the wrong shape."""


def parse_variant(variant: str) -> dict[str, str]:
    """``"k=10,subset_seed=0"`` -> ``{"k": "10", "subset_seed": "0"}``; ``{}`` when the
    variant is not a list of ``name=value`` parts."""
    if not variant:
        return {}
    out = {}
    for part in variant.split(","):
        m = _VARIANT_PART.match(part)
        if m is None:
            return {}
        out[m.group(1)] = m.group(2)
    return out


def subset_variant(k: int, subset_seed: int) -> str:
    """The variant of a data-size-study row: ``"k=K,subset_seed=S"``."""
    return f"k={k},subset_seed={subset_seed}"


def _number(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def parse_curve_steps(curve: Any) -> list[tuple[float, float]]:
    """Any stored form of a training curve -> ``[(step, val_metric), ...]`` sorted by step.

    Accepts the canonical pairs, ``{"step", "val_metric"}`` dicts and the trainer's
    ``{"steps", "accuracy"}`` dicts; points without a finite step or value are dropped.
    """
    if not isinstance(curve, Sequence) or isinstance(curve, str):
        return []
    points: list[tuple[float, float]] = []
    for p in curve:
        if isinstance(p, Mapping):
            step = p.get("step", p.get("steps"))
            value = p.get("val_metric", p.get("accuracy"))
        elif isinstance(p, Sequence) and not isinstance(p, str) and len(p) == 2:
            step, value = p
        else:
            continue
        s, v = _number(step), _number(value)
        if s is not None and v is not None:
            points.append((s, v))
    return sorted(points, key=lambda sv: sv[0])


@dataclass(frozen=True)
class Subset:
    """The per-class training subset of a data-size-study row (Section 4.7, Figure 9)."""

    k: int
    subset_seed: int
    n: int | None = None  # rows in the subset (k x classes unless a class has fewer)
    indices_sha256: str | None = None

    @property
    def variant(self) -> str:
        return subset_variant(self.k, self.subset_seed)

    def to_record(self) -> dict[str, Any]:
        return {"k": self.k, "subset_seed": self.subset_seed, "n": self.n,
                "indices_sha256": self.indices_sha256}

    @classmethod
    def parse(cls, value: Any, variant: str) -> Subset | None:
        """From the stored dict (``subset_seed`` or the older ``seed``), else from the variant."""
        if isinstance(value, Mapping) and value.get("k") is not None:
            seed = value.get("subset_seed", value.get("seed", 0))
            n = value.get("n")
            return cls(int(value["k"]), int(seed), None if n is None else int(n),
                       value.get("indices_sha256"))
        parts = parse_variant(variant)
        if parts.get("k", "").isdigit() and parts.get("subset_seed", "").isdigit():
            return cls(int(parts["k"]), int(parts["subset_seed"]))
        return None


@dataclass(frozen=True)
class FeatureSource:
    """What a result was computed from.

    ``kind`` is ``"cached"`` (a linear probe on a store entry's features: ``entry`` names it and
    ``extraction`` is the entry's extraction record) or ``"images"`` (a network trained on the
    dataset's images: fine-tuning, from scratch, logistic regression with augmentation).
    ``ids_sha256`` digests the ids of every split used, ``weights_sha256`` the weights that
    produced the features (or the starting weights of training).
    """

    kind: str
    weights_sha256: str | None = None
    ids_sha256: dict[str, str] = field(default_factory=dict)
    entry: str | None = None
    feature_dim: int | None = None
    extraction: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {"kind": self.kind, "weights_sha256": self.weights_sha256,
                "ids_sha256": dict(self.ids_sha256), "entry": self.entry,
                "feature_dim": self.feature_dim, "extraction": dict(self.extraction)}

    @classmethod
    def parse(cls, value: Any) -> FeatureSource | None:
        if not isinstance(value, Mapping) or "kind" not in value:
            return None
        return cls(str(value["kind"]), value.get("weights_sha256"),
                   dict(value.get("ids_sha256") or {}), value.get("entry"),
                   value.get("feature_dim"), dict(value.get("extraction") or {}))


#: Fields the results table adds on append (not chosen by a writer).
TABLE_FIELDS = ("result_id", "created", "n_test", "versions")


@dataclass
class ResultRow:
    """One finished job: a probe, a fine-tune, a from-scratch or an augmented-logreg run.

    Identified by ``(ckpt, dataset, setting, variant)`` (:attr:`key`). ``n_train`` counts the
    examples the scored model was trained on: train+val after the paper's refit, the subset
    alone in the data-size study (never refit there, Figure 9).
    """

    ckpt: str
    dataset: str
    setting: str
    metric: str
    test_metric: float
    variant: str = ""
    param_name: str | None = None
    best_param: float | None = None
    hyperparams: dict[str, Any] = field(default_factory=dict)
    val_metric: float | None = None
    val_curve: list[dict[str, Any]] = field(default_factory=list)
    curve_steps: list[tuple[float, float]] = field(default_factory=list)
    n_train: int | None = None
    subset: Subset | None = None
    features: FeatureSource | None = None
    imagenet_top1: float | None = None
    weights_sha256: str | None = None
    test_ids_sha256: str | None = None
    device: str | None = None
    timings: dict[str, Any] = field(default_factory=dict)
    #: ``"low"``/``"high"`` when the chosen hyperparameter is the smallest/largest of its grid
    #: (the optimum may lie beyond it: widen the grid); ``None`` inside it, or not recorded.
    grid_edge: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # set by the table on append
    result_id: str | None = None
    created: str | None = None
    n_test: int | None = None
    versions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.setting not in SETTINGS:
            raise RowFormatError(
                f"unknown setting {self.setting!r} (one of {', '.join(SETTINGS)})")
        if self.subset is not None and not self.variant:
            self.variant = self.subset.variant
        if self.subset is None:
            self.subset = Subset.parse(None, self.variant)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.ckpt, self.dataset, self.setting, self.variant)

    def to_record(self) -> dict[str, Any]:
        """The row as JSON-able data (what the table stores and the frame shows)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if isinstance(value, Subset | FeatureSource):
                value = value.to_record()
            elif f.name == "curve_steps":
                value = [[s, v] for s, v in value]
            out[f.name] = value
        for k, v in self.extra.items():
            out.setdefault(k, v)
        return out

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ResultRow:
        """Parse a stored row, old formats included (module docs)."""
        missing = [k for k in ("ckpt", "dataset", "setting", "metric", "test_metric")
                   if record.get(k) is None]
        if missing:
            raise RowFormatError(f"result row lacks {', '.join(missing)}")
        names = {f.name for f in fields(cls)} - {"extra"}
        variant = record.get("variant")
        variant = "" if variant is None or variant != variant else str(variant)
        n_train, n_test = record.get("n_train"), record.get("n_test")
        return cls(
            ckpt=str(record["ckpt"]),
            dataset=str(record["dataset"]),
            setting=str(record["setting"]),
            metric=str(record["metric"]),
            test_metric=float(record["test_metric"]),
            variant=variant,
            param_name=record.get("param_name"),
            best_param=_number(record.get("best_param")),
            hyperparams=dict(record.get("hyperparams") or {}),
            val_metric=_number(record.get("val_metric")),
            val_curve=list(record.get("val_curve") or []),
            curve_steps=parse_curve_steps(record.get("curve_steps")),
            n_train=None if _number(n_train) is None else int(n_train),
            subset=Subset.parse(record.get("subset"), variant),
            features=FeatureSource.parse(record.get("features")),
            imagenet_top1=_number(record.get("imagenet_top1")),
            weights_sha256=record.get("weights_sha256"),
            test_ids_sha256=record.get("test_ids_sha256"),
            device=record.get("device"),
            timings=dict(record.get("timings") or {}),
            grid_edge=record.get("grid_edge") if record.get("grid_edge") in ("low", "high")
            else None,
            extra={k: v for k, v in record.items() if k not in names},
            result_id=record.get("result_id"),
            created=record.get("created"),
            n_test=None if _number(n_test) is None else int(n_test),
            versions=dict(record.get("versions") or {}),
        )
