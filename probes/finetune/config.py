"""What a fine-tune / from-scratch / logistic-regression-with-augmentation job is asked to do,
and what it reports back (:class:`FinetuneOutcome`). Light on purpose (no torch), so the CLI can
import these types at start-up.

:class:`FinetuneConfig` holds the user's choices (``None`` meaning "the paper's value");
:meth:`FinetuneConfig.resolve` turns them into the concrete numbers for one dataset, because two
defaults depend on the data: the data-size study (Section 4.7, Appendix A.5/A.6) trains longer with
smaller batches, and a batch can never exceed the training set.

Every bad input raises :class:`FinetuneConfigError`, a ``ValueError`` and (when ``probes.errors``
exists) a :class:`probes.errors.ProbeInputError`, so the CLI prints it as one ``error:`` line.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from probes.errors import ProbeInputError


class FinetuneConfigError(ProbeInputError):
    """A fine-tuning job that cannot run as asked (unknown grid, steps <= 0, batch > data, ...)."""


def parse_step_budgets(spec: str) -> list[int]:
    """``"1000,2500,5000"`` -> ``[1000, 2500, 5000]`` (sorted, unique): Figure 8's budgets.

    Raises :class:`FinetuneConfigError` for anything but positive integers."""
    parts = [p.strip().replace("_", "") for p in str(spec).split(",") if p.strip()]
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise FinetuneConfigError(
            f"--steps takes positive integers separated by commas (e.g. 1000,2500), got {spec!r}")
    return sorted({int(p) for p in parts})


def step_budget_family(budgets: list[int]) -> str:
    """The family name the rows of one ``--steps A,B,...`` call share (comma-free)."""
    return "step_budgets:" + "/".join(str(b) for b in sorted(budgets))


#: init -> results-table setting.
SETTING_OF_INIT = {"imagenet": "finetune", "random": "scratch"}
SETTINGS = ("finetune", "scratch", "logreg_aug")

#: Paper defaults (Appendix A.5, A.6, G.2).
PAPER_STEPS = {"finetune": 20_000, "scratch": 20_000, "logreg_aug": 40_000}
PAPER_BATCH = 256
#: Data-size study (Appendix A.5 / A.6): at least this many steps or epochs, this batch size, and
#: the learning-rate range divided by this factor. logreg_aug keeps its own protocol.
DATASIZE_RULE: dict[str, dict[str, float]] = {
    "finetune": {"min_steps": 1000, "min_epochs": 100, "batch": 64, "lr_divisor": 4},
    "scratch": {"min_steps": 78_125, "min_epochs": 200, "batch": 16, "lr_divisor": 16},
}
#: Number of validation evaluations along a run when ``eval_every`` is not given (at most: see
#: :data:`EVAL_COMPUTE_SHARE`).
DEFAULT_EVALS_PER_RUN = 10
#: By default, evaluating val (both crops, every ``eval_every`` steps) takes at most this share
#: of a run's compute; a short run on a large val split evaluates fewer times (at least once, at
#: the end, which chooses the crop). An explicit ``eval_every`` is obeyed as given.
EVAL_COMPUTE_SHARE = 0.10
#: Forward-pass equivalents per training image: forward + backward ~ 3 when every layer trains,
#: ~ 1 with a frozen backbone (logreg_aug). Evaluating costs 1 per image and crop.
_TRAIN_COST = {"finetune": 3.0, "scratch": 3.0, "logreg_aug": 1.0}
_EVAL_CROPS = 2
#: ``featurestore finetune --smoke``: the smallest run that exercises the whole job (grid search,
#: train+val retrain, test score, result row): a few steps on tiny images, one grid point. Its
#: variant names every override, so it never shadows a real row.
SMOKE = {"steps": 2, "batch_size": 8, "image_size": 32}
SMOKE_GRID = {"finetune": "lr=0.01", "scratch": "lr=0.1", "logreg_aug": "l2=1e-4"}


def default_eval_every(setting: str, steps: int, batch: int, n_val: int) -> int:
    """The evaluation interval whose val passes cost at most :data:`EVAL_COMPUTE_SHARE` of the
    training compute (and at most :data:`DEFAULT_EVALS_PER_RUN` of them)."""
    train_cost = steps * batch * _TRAIN_COST.get(setting, 3.0)
    per_eval = max(1, n_val) * _EVAL_CROPS
    evals = int(EVAL_COMPUTE_SHARE * train_cost // per_eval)
    evals = max(1, min(DEFAULT_EVALS_PER_RUN, evals))
    return max(1, steps // evals)
DEFAULT_CKPT_EVERY = 500


@dataclass
class FinetuneConfig:
    """A job's options. ``None`` fields take the paper's value for the setting (see ``resolve``).

    ``image_size`` overrides the checkpoint's ImageNet input size (the protocol uses the latter;
    the override exists for quick CPU experiments and is recorded in the row and its variant).
    """

    setting: str = "finetune"
    grid: str = "paper"
    steps: int | None = None
    batch_size: int | None = None
    eval_every: int | None = None
    ckpt_every: int = DEFAULT_CKPT_EVERY
    seed: int = 0
    examples_per_class: int | None = None
    subset_seed: int = 0
    image_size: int | None = None
    weights: str | None = None
    device: str = "auto"
    num_workers: int | None = None
    eval_batch_size: int | None = None
    progress: bool = True
    force: bool = False
    #: Explicit results-table variant; None builds it from the non-default options.
    variant: str | None = None
    #: Name of a family of independent runs this job belongs to (Figure 8's step budgets:
    #: ``featurestore finetune --steps 1000,2500`` runs one job per budget, each with its own
    #: grid and train+val run, all named ``step_budgets:1000/2500``); recorded in the row.
    family: str | None = None

    def validate(self) -> None:
        """Reject what can be rejected before any data or weights are touched."""
        if self.setting not in SETTINGS:
            raise FinetuneConfigError(
                f"unknown setting {self.setting!r} (one of {', '.join(SETTINGS)})"
            )
        for name in ("steps", "batch_size", "eval_every", "eval_batch_size", "image_size"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v <= 0):
                raise FinetuneConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.ckpt_every <= 0:
            raise FinetuneConfigError(
                f"ckpt_every must be a positive integer, got {self.ckpt_every}"
            )
        if self.examples_per_class is not None and self.examples_per_class <= 0:
            raise FinetuneConfigError(
                f"examples_per_class must be a positive integer, got {self.examples_per_class}"
            )
        if self.setting == "scratch" and self.weights not in (None, "random"):
            raise FinetuneConfigError(
                "--init random trains from a random initialisation; --weights does not apply"
            )
        if self.num_workers is not None and self.num_workers < 0:
            raise FinetuneConfigError(f"num_workers must be >= 0, got {self.num_workers}")

    def resolve(self, n_train: int, n_trainval: int, n_val: int | None = None
                ) -> ResolvedConfig:
        """Concrete steps, batch size and evaluation interval for a training set of ``n_train``.

        Paper defaults: 20,000 steps (40,000 for logreg_aug) at batch 256. In the data-size study
        (``examples_per_class`` set) fine-tuning uses batch 64 for max(1000 steps, 100 epochs) with
        the lr range / 4, and from-scratch training batch 16 for max(78,125 steps, 200 epochs) with
        the lr range / 16 (Appendix A.5, A.6). A default batch is cut to the training set size (so
        a 1-example-per-class subset still trains); an explicit batch larger than the data (which
        with ``drop_last`` would leave no batch at all) is an error.
        """
        self.validate()
        datasize = self.examples_per_class is not None and self.setting in DATASIZE_RULE
        rule = DATASIZE_RULE.get(self.setting, {}) if datasize else {}
        batch = self.batch_size
        if batch is None:
            batch = min(int(rule.get("batch", PAPER_BATCH)), n_train)
        smallest = min(n_train, n_trainval)
        if batch > smallest:
            which = "training subset" if self.examples_per_class is not None else "training split"
            raise FinetuneConfigError(
                f"batch size {batch} is larger than the {which} ({smallest} examples): every "
                f"epoch would drop its only, partial batch; use --batch-size <= {smallest}"
            )
        steps = self.steps
        if steps is None:
            steps = PAPER_STEPS[self.setting]
            if rule:
                epochs = math.ceil(rule["min_epochs"] * n_train / batch)
                steps = max(int(rule["min_steps"]), epochs)
        if n_val is None:  # callers that do not say: the part of train+val that is not train
            n_val = max(1, n_trainval - n_train)
        eval_every = self.eval_every or default_eval_every(self.setting, steps, batch, n_val)
        return ResolvedConfig(
            setting=self.setting,
            steps=steps,
            batch_size=batch,
            eval_every=min(eval_every, steps),
            ckpt_every=self.ckpt_every,
            seed=self.seed,
            lr_divisor=float(rule.get("lr_divisor", 1.0)),
            image_size=self.image_size,
        )

    def variant_string(self) -> str:
        """The results-table variant: ``""`` for the paper protocol, else what differs from it.

        ``k=K,subset_seed=S`` for the data-size study (the string logistic regression uses too),
        then ``steps=``, ``batch=``, ``grid=``, ``size=``, ``seed=``, ``weights=`` (file name, or
        ``random``) when set to non-default values, so a short CPU run or other initial weights
        never shadow (or are skipped because of) a full-protocol row.
        """
        if self.variant is not None:
            return self.variant
        parts = []
        if self.examples_per_class is not None:
            parts += [f"k={self.examples_per_class}", f"subset_seed={self.subset_seed}"]
        if self.steps is not None:
            parts.append(f"steps={self.steps}")
        if self.batch_size is not None:
            parts.append(f"batch={self.batch_size}")
        if self.grid != "paper":
            parts.append("grid=quick" if self.grid == "quick" else f"grid={_grid_tag(self.grid)}")
        if self.image_size is not None:
            parts.append(f"size={self.image_size}")
        if self.seed != 0:
            parts.append(f"seed={self.seed}")
        if self.weights is not None and self.setting != "scratch":
            name = self.weights if self.weights == "random" else Path(self.weights).name
            parts.append(f"weights={name.replace(',', '_')}")
        return ",".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _grid_tag(spec: str) -> str:
    """A comma-free tag for an explicit grid spec (the variant string is comma-separated)."""
    return spec.replace(" ", "").replace(",", "&")


@dataclass(frozen=True)
class ResolvedConfig:
    """The numbers one training run uses (see :meth:`FinetuneConfig.resolve`)."""

    setting: str
    steps: int
    batch_size: int
    eval_every: int
    ckpt_every: int
    seed: int
    lr_divisor: float = 1.0
    image_size: int | None = None


@dataclass
class FinetuneOutcome:
    """What one call did: ``status`` is ``done`` or ``skipped`` (row already in the table)."""

    ckpt: str
    dataset: str
    setting: str
    variant: str
    status: str
    test_metric: float | None = None
    metric: str | None = None
    result_id: str | None = None
    seconds: float = 0.0
    job: str | None = None
    row: dict[str, Any] = field(default_factory=dict, repr=False)
