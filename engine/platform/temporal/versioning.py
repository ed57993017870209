"""Temporal worker versioning for the journey workers, from settings.

With ``AFTERCARE_DEPLOYMENT_NAME`` set, every worker of the process declares the
Worker Deployment Version ``<deployment name>.<build id>`` and uses worker
versioning: the server sends a journey's tasks only to workers of the version it is
pinned to, so a deploy never hands a sleeping journey to code that would replay it
differently. Journeys are **pinned** by default (they finish, or reach
continue-as-new, on the build that started them; workflows/versioning.py moves them
forward there), because a journey's history is long-lived and a change to its
commands would otherwise need ``workflow.patched`` everywhere. Which build is
current (takes new journeys) is set with the server's API, e.g. ``temporal worker
deployment set-current-version`` (docs/safe-changes.md).

Unset (the default, dev and tests): no versioning; the worker still reports the
code's build id (engine.platform.temporal.build_id) on every task it completes.
"""

from __future__ import annotations

from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import WorkerDeploymentConfig

from engine.platform.settings import Settings
from engine.platform.temporal.build_id import worker_build_id

# A journey stays on its build until it continues as new.
JOURNEY_VERSIONING = VersioningBehavior.PINNED


def deployment_version(settings: Settings) -> WorkerDeploymentVersion | None:
    """This worker's deployment version, or None when versioning is off."""
    if not settings.deployment_name:
        return None
    return WorkerDeploymentVersion(
        deployment_name=settings.deployment_name,
        build_id=settings.build_id or worker_build_id(),
    )


def deployment_config(settings: Settings) -> WorkerDeploymentConfig | None:
    """What every worker of the process declares, or None for unversioned workers."""
    version = deployment_version(settings)
    if version is None:
        return None
    return WorkerDeploymentConfig(
        version=version,
        use_worker_versioning=True,
        default_versioning_behavior=JOURNEY_VERSIONING,
    )


def unversioned_build_id(settings: Settings) -> str | None:
    """The build id an unversioned worker reports; None when versioned (the SDK takes
    either a build id or a deployment config, and the version carries the build)."""
    return None if settings.deployment_name else worker_build_id()
