"""The paper's statistics (Kornblith, Shlens & Le, Section 3, Appendix A.1, B, D, Section 4.6).

Conventions used throughout:

* Accuracies are fractions in the open interval (0, 1), never percentages. Every accuracy is
  analysed after the logit transform, because the paper treats model and dataset effects as
  additive in log odds (Section 3): a 1% gain means something different at 50% than at 99%.
* A *table* is a ``pandas.DataFrame`` with one row per model and one column per dataset (the
  layout of the paper's Table 6; see :mod:`probes.analysis.paper`). ImageNet top-1 is a
  ``pandas.Series`` indexed by model.
* Functions that relate ImageNet accuracy to a table align the two on their common models.
* Results with several numbers are plain dicts, so that they drop straight into a DataFrame row.

Every test here is the one the paper names; scipy.stats does the distributional work wherever it
has the test (Pearson, Spearman, binomial, paired t, Wilcoxon, normal tail).

``probes.stats`` is public API, so its names are all re-exported here; the tests live in
submodules by the question they answer: :mod:`~probes.stats.logits`,
:mod:`~probes.stats.correlation`, :mod:`~probes.stats.two_models`,
:mod:`~probes.stats.across_datasets` and :mod:`~probes.stats.convergence`.
"""

from __future__ import annotations

from probes.stats.across_datasets import (
    not_worse_than_best_across_datasets,
    paired_t_across_datasets,
    wilcoxon_per_dataset,
)
from probes.stats.convergence import (
    geometric_mean,
    steps_to_fraction_of_max_odds,
)
from probes.stats.correlation import (
    bootstrap_band,
    dependent_correlations_test,
    fisher_z,
    per_dataset_correlation,
    transfer_correlation,
)
from probes.stats.logits import (
    inv_logit,
    logit,
    mean_logit,
    morey_se,
)
from probes.stats.two_models import Metric as Metric  # the metric-callable type, as before
from probes.stats.two_models import (
    label_correctness,
    mcnemar_exact,
    not_worse_than_best,
    not_worse_than_best_permutation,
    permutation_test,
    significance_vs_best,
)

__all__ = [
    "bootstrap_band",
    "dependent_correlations_test",
    "fisher_z",
    "geometric_mean",
    "inv_logit",
    "label_correctness",
    "logit",
    "mcnemar_exact",
    "mean_logit",
    "morey_se",
    "not_worse_than_best",
    "not_worse_than_best_across_datasets",
    "not_worse_than_best_permutation",
    "paired_t_across_datasets",
    "per_dataset_correlation",
    "permutation_test",
    "significance_vs_best",
    "steps_to_fraction_of_max_odds",
    "transfer_correlation",
    "wilcoxon_per_dataset",
]
