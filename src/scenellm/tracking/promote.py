"""``scenellm promote VERSION [--force]``: move the ``champion`` alias to a registered
version by the registry's rule (:func:`scenellm.tracking.registry.promotion`), or over it
with ``force`` — the override the rule's "not comparable" outcome asks for."""

from __future__ import annotations

from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from scenellm.errors import UserError
from scenellm.tracking.registry import BUNDLE_TAG, MODEL_NAME, champion_info, promotion


def promote_version(client: MlflowClient, version: int, force: bool = False,
                    name: str = MODEL_NAME) -> dict[str, Any]:
    """Make ``version`` the champion when the rule says so (or ``force``); returns
    ``{"version", "alias", "previous_champion", "reason"}``. A refusal is a one-line
    :class:`UserError` that names ``--force``."""
    try:
        found = client.get_model_version(name, str(version))
    except MlflowException:
        known = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
        raise UserError(f"model '{name}' has no version {version} (versions: "
                        f"{', '.join(map(str, known)) or 'none'}).") from None
    champion = champion_info(client, name)
    if champion is not None and champion["version"] == version:
        return {"version": version, "alias": "champion", "previous_champion": version,
                "reason": "already the champion"}
    metric = float(found.tags.get("metric", "nan"))
    alias, reason = promotion(champion, metric, found.tags.get("data_md5", ""),
                              found.tags.get("metric_name", ""), force,
                              can_predict=BUNDLE_TAG in found.tags, version=version)
    if alias != "champion":
        raise UserError(f"{name} version {version} stays {', '.join(found.aliases) or 'as is'}"
                        f": {reason.split('; re-evaluate')[0]}; pass --force to promote it "
                        "anyway.")
    if "challenger" in found.aliases:
        client.delete_registered_model_alias(name, "challenger")
    client.set_registered_model_alias(name, "champion", str(version))
    client.set_model_version_tag(name, str(version), "promoted_by",
                                 "scenellm promote --force" if force else "scenellm promote")
    return {"version": version, "alias": "champion",
            "previous_champion": champion["version"] if champion else None, "reason": reason}
