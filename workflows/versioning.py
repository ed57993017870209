"""Where a pinned journey moves to a newer build: at continue-as-new.

Under worker versioning (engine/platform/temporal/versioning.py) a journey is pinned
to the build that started it. Continue-as-new is its safe point to move forward:
the new run starts from the state alone (no history to replay), so it can run on
whichever build is current without any ``workflow.patched``. Unversioned workers
(dev, tests) keep the SDK's default, inheriting nothing.
"""

from __future__ import annotations

from temporalio import workflow

# Asked only by journeys that run under a deployment version, so the histories
# recorded without versioning (tests/histories) replay unchanged.
UPGRADE_AT_CONTINUE_AS_NEW_PATCH = "upgrade-at-continue-as-new"


def continue_as_new_versioning() -> workflow.ContinueAsNewVersioningBehavior | None:
    """AUTO_UPGRADE for a journey on a versioned worker: its next run starts on the
    deployment's current build. None otherwise (the server's inheritance rules)."""
    version = workflow.info().get_current_deployment_version()
    if version is None or not version.deployment_name:
        return None
    if not workflow.patched(UPGRADE_AT_CONTINUE_AS_NEW_PATCH):
        return None
    return workflow.ContinueAsNewVersioningBehavior.AUTO_UPGRADE
