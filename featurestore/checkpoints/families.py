"""Settings studies: named families of checkpoints of one architecture that differ only in their
training recipe (the paper's Figures 3, 4, 5, 12, 14, 15 generalised).

The paper retrains Inception v3 / ResNet-50 with and without label smoothing, dropout, auxiliary
heads and weight decay, and asks how each setting changes transfer. timm ships the same question
already answered for ResNet-50: one architecture, many published recipes (``resnet50.a1_in1k``,
``.a2_in1k``, ``.a3_in1k``, ``.tv_in1k``, ``.tv2_in1k``, ...). :func:`builtin_studies` offers
that family as ``resnet50_recipes`` (the tags timm lists as trained on ImageNet-1k alone);
users declare their own in a *study file*.

Study file (TOML, or JSON with the same structure)::

    [study.my_recipes]                  # the study's name
    arch = "resnet50"                   # the one architecture every member shares
    description = "label smoothing on/off"   # optional

    [[study.my_recipes.member]]
    ckpt = "r50_ls"                     # the checkpoint name, as stored in the feature store
    recipe = "label smoothing 0.1"      # label on the figure (default: ckpt)
    imagenet_top1 = 0.772               # optional fraction (or percent > 1), shown in the inset
    top1_source = "our eval"            # optional: where that number comes from

    [[study.my_recipes.member]]
    ckpt = "r50_plain"
    recipe = "no label smoothing"

A member whose ``ckpt`` is not a timm name or registry entry is registered (name -> ``arch``) by
:func:`register_members`, so ``load_checkpoint(ckpt, weights=FILE)`` builds ``arch`` under that
name and its features land in the store as ``ckpt``.

ImageNet top-1 comes from the study file, else from the checkpoint registry (which records
timm's published evaluation for the pinned ``modern`` / ``paper16`` entries); timm's
``pretrained_cfg`` records none, so members without a known value have ``None`` and are left
out of the inset rather than given an invented number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featurestore.checkpoints.registry import REGISTRY, CheckpointInfo, register
from featurestore.errors import FeatureStoreError

__all__ = ["SettingsStudy", "StudyFileError", "StudyMember", "builtin_studies", "get_study",
           "load_study_file", "register_members", "report_studies"]

#: ResNet-50 tags timm lists that were not trained on ImageNet-1k alone (other data, not only
#: another recipe): semi-/weakly supervised pretraining on YFCC100M / IG-1B, and bamboo.
_OTHER_DATA = ("fb_ssl_yfcc100m_ft_in1k", "fb_swsl_ig1b_ft_in1k", "bamboo")


class StudyFileError(FeatureStoreError):
    """A study file that cannot be read or declares an unusable study."""


@dataclass(frozen=True)
class StudyMember:
    """One recipe of a study: the stored checkpoint name and what to call it."""

    ckpt: str
    recipe: str
    imagenet_top1: float | None = None
    top1_source: str = ""


@dataclass(frozen=True)
class SettingsStudy:
    """A named family of checkpoints of one architecture differing in training recipe."""

    name: str
    arch: str
    members: tuple[StudyMember, ...]
    description: str = ""
    source: str = "builtin"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def ckpts(self) -> list[str]:
        return [m.ckpt for m in self.members]

    def recipe_of(self, ckpt: str) -> str:
        return next((m.recipe for m in self.members if m.ckpt == ckpt), ckpt)


def _top1(value: Any, where: str) -> float | None:
    """A fraction in (0, 1); a percent (> 1) is divided by 100; None stays None."""
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise StudyFileError(f"{where}: imagenet_top1 must be a number, got {value!r}") from None
    v = v / 100.0 if v > 1.0 else v
    if not 0.0 < v < 1.0:
        raise StudyFileError(f"{where}: imagenet_top1 {value!r} is not a top-1 accuracy")
    return v


def _registry_top1(ckpt: str) -> tuple[float | None, str]:
    """The registry's top-1 of ``ckpt``: its own entry, else an entry that loads exactly this
    timm tag under another name (``paper16``'s ``resnet50_v1`` is ``resnet50.tv_in1k``)."""
    info = REGISTRY.get(ckpt)
    if info is None or info.imagenet_top1 is None:
        info = next((i for i in REGISTRY.values() if i.arch == ckpt and i.available
                     and i.imagenet_top1 is not None and "timm" in i.top1_source), None)
    if info is None or info.imagenet_top1 is None:
        return None, ""
    return float(info.imagenet_top1), info.top1_source


def resnet50_recipes() -> SettingsStudy:
    """timm's ResNet-50 ImageNet-1k recipes, as timm lists them (``timm.list_pretrained``)."""
    import timm

    import featurestore.checkpoints.presets  # noqa: F401  (registers the pinned top-1 values)

    tags = [n for n in timm.list_pretrained("resnet50.*")
            if n.endswith("_in1k") and n.split(".", 1)[1] not in _OTHER_DATA]
    members = []
    for name in tags:
        top1, source = _registry_top1(name)
        members.append(StudyMember(name, name.split(".", 1)[1].removesuffix("_in1k"), top1,
                                   source))
    return SettingsStudy(
        "resnet50_recipes", "resnet50", tuple(members),
        "ResNet-50 trained on ImageNet-1k with timm's published recipes (ResNet strikes back "
        "a1/a2/a3, torchvision v1/v2, RandAugment, ...)", "timm.list_pretrained('resnet50.*')")


def builtin_studies() -> dict[str, SettingsStudy]:
    """The studies available without a file."""
    study = resnet50_recipes()
    return {study.name: study}


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise StudyFileError(f"cannot read study file {path}: {e.strerror or e}") from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        import tomllib

        return tomllib.loads(text)
    except (ValueError, json.JSONDecodeError) as e:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise StudyFileError(f"study file {path} is not valid {kind}: {e}") from None


def load_study_file(path: str | Path) -> dict[str, SettingsStudy]:
    """Every study a TOML/JSON study file declares (format in the module docs)."""
    path = Path(path)
    doc = _read(path)
    studies = doc.get("study")
    if not isinstance(studies, dict) or not studies:
        raise StudyFileError(f"study file {path} declares no [study.<name>] table")
    out: dict[str, SettingsStudy] = {}
    for name, spec in studies.items():
        where = f"{path}: study {name}"
        if not isinstance(spec, dict) or not isinstance(spec.get("arch"), str):
            raise StudyFileError(f"{where}: needs arch = \"<timm architecture>\"")
        raw = spec.get("member") or spec.get("members") or []
        if not isinstance(raw, list) or len(raw) < 2:
            raise StudyFileError(f"{where}: needs at least two [[member]] entries to compare")
        members = []
        for i, m in enumerate(raw):
            if not isinstance(m, dict) or not isinstance(m.get("ckpt"), str):
                raise StudyFileError(f"{where}: member {i + 1} needs ckpt = \"<name>\"")
            top1 = _top1(m.get("imagenet_top1"), f"{where}, member {m['ckpt']}")
            source = str(m.get("top1_source", "study file" if top1 is not None else ""))
            if top1 is None:
                top1, source = _registry_top1(m["ckpt"])
            members.append(StudyMember(m["ckpt"], str(m.get("recipe", m["ckpt"])), top1,
                                       source))
        if len({m.ckpt for m in members}) != len(members):
            raise StudyFileError(f"{where}: a checkpoint is listed twice")
        out[name] = SettingsStudy(name, spec["arch"], tuple(members),
                                  str(spec.get("description", "")), str(path))
    return out


def get_study(name: str, study_file: str | Path | None = None) -> SettingsStudy:
    """A study by name: from ``study_file`` when given, else the built-in ones."""
    studies = load_study_file(study_file) if study_file is not None else builtin_studies()
    if name not in studies:
        raise StudyFileError(f"no settings study {name!r} (have: {', '.join(studies)})")
    return studies[name]


def report_studies(study_file: str | Path | None = None) -> dict[str, SettingsStudy]:
    """The studies a report looks for in a store: the built-in ones, then every study of
    ``study_file`` (a file's study replaces a built-in one of the same name). A report shows
    only those with members in the store, so listing a study costs nothing otherwise."""
    studies = builtin_studies()
    if study_file is not None:
        studies.update(load_study_file(study_file))
    return studies


def register_members(study: SettingsStudy) -> list[str]:
    """Register every member that is neither a registry entry nor a timm pretrained tag as a
    checkpoint of ``study.arch`` (carrying its recipe and top-1), so it can be loaded and
    extracted under its own name. Returns the names registered."""
    import timm

    done = []
    for m in study.members:
        if m.ckpt in REGISTRY or (timm.is_model(m.ckpt.split(".", 1)[0])
                                  and m.ckpt.split(".", 1)[0] == study.arch):
            continue
        register(CheckpointInfo(
            name=m.ckpt, arch=study.arch, imagenet_top1=m.imagenet_top1,
            top1_source=m.top1_source, notes=f"settings study {study.name}: {m.recipe}",
            extra={"study": study.name, "recipe": m.recipe}))
        done.append(m.ckpt)
    return done
