"""Worker versioning from settings: off unless a deployment name is set; then every
worker declares that deployment's version and pins journeys."""

from __future__ import annotations

from temporalio.common import VersioningBehavior

from engine.platform.settings import Settings
from engine.platform.temporal.build_id import worker_build_id
from engine.platform.temporal.versioning import deployment_config, unversioned_build_id


def test_off_by_default() -> None:
    settings = Settings(_env_file=None)
    assert deployment_config(settings) is None
    assert unversioned_build_id(settings) == worker_build_id()


def test_a_deployment_name_turns_it_on_with_the_code_as_build_id() -> None:
    config = deployment_config(Settings(_env_file=None, deployment_name="aftercare"))
    assert config is not None
    assert config.use_worker_versioning
    assert config.version.deployment_name == "aftercare"
    assert config.version.build_id == worker_build_id()
    assert config.default_versioning_behavior == VersioningBehavior.PINNED


def test_the_build_id_setting_names_the_build() -> None:
    settings = Settings(_env_file=None, deployment_name="aftercare", build_id="2026-12-06.1")
    config = deployment_config(settings)
    assert config is not None
    assert config.version.build_id == "2026-12-06.1"
    # The SDK takes a build id or a deployment config, never both.
    assert unversioned_build_id(settings) is None
