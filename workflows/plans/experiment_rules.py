"""What makes a step's experiment and a plan's attribution windows valid.

Checked when a plan is loaded (``workflows.plans.catalogue``), each problem as
(path inside the file, what is wrong), like the catalogue's other checks:

- an experiment id is a plain identifier ([a-z][a-z0-9_-]*, at most 100 characters);
- it has at least two variants, or one and a holdout; one variant is named
  ``control``; names are plain identifiers, unique, and never ``holdout``;
- every weight is a positive finite number; the weights are relative, so they
  need not sum to 1 (50/50 and 1/1 mean the same);
- ``holdout`` is a share of customers between 0 and 0.5 (a holdout larger than the
  treated group would test little but the message's absence), and 0 on
  transactional and support steps: those answer the order or the customer, and
  nobody may be kept from them;
- a variant's template exists, its subject (one text, or one per locale: ``en``,
  ``de-AT``, ``*`` for any other) is one line of at most 200 characters,
  its channels are not empty and none is listed twice;
- attribution windows are positive and at most 90 days.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import timedelta

from workflows.plans.model import (
    ALWAYS_ALLOWED_CATEGORIES,
    CONTROL_VARIANT,
    HOLDOUT_VARIANT,
    Attribution,
    Category,
    Experiment,
)

Problem = tuple[str, str]
TemplateCheck = Callable[[str, str], list[Problem]]

MAX_HOLDOUT = 0.5
MAX_SUBJECT_LENGTH = 200
MAX_EXPERIMENT_ID_LENGTH = 100
MAX_VARIANT_NAME_LENGTH = 40
MAX_ATTRIBUTION_WINDOW = timedelta(days=90)
_EXPERIMENT_ID = re.compile(r"[a-z][a-z0-9_-]*")
_VARIANT_NAME = re.compile(r"[a-z][a-z0-9_]*")
_LOCALE = re.compile(r"\*|[a-z]{2,3}([-_][A-Za-z]{2,4})?")


def check_experiment(
    experiment: Experiment, category: Category, path: str, template: TemplateCheck
) -> list[Problem]:
    problems: list[Problem] = []
    if not _EXPERIMENT_ID.fullmatch(experiment.id) or len(experiment.id) > MAX_EXPERIMENT_ID_LENGTH:
        problems.append(
            (
                f"{path}.id",
                "experiment ids are plain identifiers [a-z][a-z0-9_-]* of at most "
                f"{MAX_EXPERIMENT_ID_LENGTH} characters, got {experiment.id!r}",
            )
        )
    holdout = experiment.holdout
    if not math.isfinite(holdout) or not 0 <= holdout <= MAX_HOLDOUT:
        problems.append(
            (f"{path}.holdout", f"a share of customers from 0 to {MAX_HOLDOUT}, got {holdout}")
        )
    elif holdout > 0 and category in ALWAYS_ALLOWED_CATEGORIES:
        problems.append((f"{path}.holdout", f"nobody may be held out of a {category} message"))
    variants = experiment.variants
    if len(variants) < 2 and not (len(variants) == 1 and holdout > 0):
        problems.append(
            (f"{path}.variants", "an experiment needs two variants, or one and a holdout")
        )
    names = [variant.name for variant in variants]
    if CONTROL_VARIANT not in names:
        problems.append((f"{path}.variants", f"one variant must be named {CONTROL_VARIANT!r}"))
    seen: set[str] = set()
    for i, variant in enumerate(variants):
        where = f"{path}.variants[{i}]"
        if variant.name == HOLDOUT_VARIANT:
            problems.append(
                (f"{where}.name", f"{HOLDOUT_VARIANT!r} is the holdout's: set holdout instead")
            )
        elif (
            not _VARIANT_NAME.fullmatch(variant.name) or len(variant.name) > MAX_VARIANT_NAME_LENGTH
        ):
            problems.append(
                (
                    f"{where}.name",
                    "variant names are plain identifiers [a-z][a-z0-9_]* of at most "
                    f"{MAX_VARIANT_NAME_LENGTH} characters, got {variant.name!r}",
                )
            )
        if variant.name in seen:
            problems.append((f"{where}.name", f"variant {variant.name!r} is listed twice"))
        seen.add(variant.name)
        if not math.isfinite(variant.weight) or variant.weight <= 0:
            problems.append((f"{where}.weight", f"must be a positive number, got {variant.weight}"))
        if variant.template is not None:
            problems += template(variant.template, f"{where}.template")
        subjects = variant.subject
        if isinstance(subjects, str):
            subjects = {"": subjects}
        for locale, subject in (subjects or {}).items():
            at = f"{where}.subject" + (f".{locale}" if locale else "")
            if locale and not _LOCALE.fullmatch(locale):
                problems.append((at, f"a locale such as en or de-AT, or *, got {locale!r}"))
            if not subject.strip() or len(subject) > MAX_SUBJECT_LENGTH or "\n" in subject:
                problems.append((at, f"one line of 1 to {MAX_SUBJECT_LENGTH} characters"))
        if variant.channels is not None:
            if not variant.channels:
                problems.append((f"{where}.channels", "at least one channel is needed"))
            elif len(set(variant.channels)) != len(variant.channels):
                problems.append((f"{where}.channels", "a channel is listed twice"))
    return problems


def check_attribution(attribution: Attribution, path: str) -> list[Problem]:
    problems: list[Problem] = []
    for name in ("click_window", "delivery_window"):
        window: timedelta = getattr(attribution, name)
        if window <= timedelta(0) or window > MAX_ATTRIBUTION_WINDOW:
            problems.append(
                (f"{path}.{name}", f"positive, at most {MAX_ATTRIBUTION_WINDOW.days} days")
            )
    return problems
