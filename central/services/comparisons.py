"""A candidate model's comparison with the running one on the labelled set, attached to its registered version.

Why uploaded and not computed here: running both models needs ONNX Runtime, OpenCV and the labelled
frames, which live with the models tooling (`hazardwatch models compare`), and central never imports
`models/` (central's install has none of them). The interface is the JSON object `models compare --json`
prints; central checks it names the registered candidate, keeps it, and says what a rollout would change.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hazardwatch.central.services.errors import Invalid, NotFound
from hazardwatch.central.store import Tx

MAX_CHANGED = 500  # frame paths kept per kind of change (the counts stay exact)


class ModelRun(BaseModel):
    """One model's figures on the labelled frames, as `models compare --json` reports them."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=200, description="'NAME VERSION'")
    threshold: float
    n_pos: int = Field(ge=0)
    n_neg: int = Field(ge=0)
    tp: int = Field(ge=0)
    fp: int = Field(ge=0)
    fn: int = Field(ge=0)
    tn: int = Field(ge=0)
    precision: float = Field(ge=0, le=1)
    recall: float = Field(ge=0, le=1)
    f1: float = Field(ge=0, le=1)
    ms_per_image: float = Field(ge=0)


class Comparison(BaseModel):
    model_config = ConfigDict(extra="ignore")
    running: ModelRun
    candidate: ModelRun
    changes: dict[str, list[str]] = Field(default_factory=dict)


def parse(raw: bytes) -> Comparison:
    """The uploaded JSON, or Invalid naming the field and why."""
    try:
        return Comparison.model_validate_json(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise Invalid(
            f"comparison: {where}: {err['msg']} (send the object `hazardwatch models compare --json` prints)"
        ) from None


def summary(c: Comparison) -> dict[str, Any]:
    """What the candidate would change on the labelled set, for the rollout button's warning."""
    run, cand = c.running, c.candidate
    return {
        "labelled": cand.n_pos + cand.n_neg,
        "caught": cand.tp - run.tp,
        "false_alarms": cand.fp - run.fp,
        "catches_fewer": cand.tp < run.tp,
        "more_false_alarms": cand.fp > run.fp,
    }


def attach(tx: Tx, name: str, version: str, raw: bytes, who: str, now: float) -> dict[str, Any]:
    """Store the comparison with the registered candidate `name` `version` (a newer one replaces it)."""
    c = parse(raw)
    if tx.one("SELECT 1 FROM model_versions WHERE name = ? AND version = ?", (name, version)) is None:
        raise NotFound(f"{name}@{version} is not registered")
    if c.candidate.model != f"{name} {version}":
        raise Invalid(f"comparison: candidate.model is {c.candidate.model!r}, not this version ({name} {version})")
    kept = c.model_dump()
    kept["changes"] = {k: v[:MAX_CHANGED] for k, v in c.changes.items()}
    kept["changed"] = {k: len(v) for k, v in c.changes.items()}
    tx.execute(
        "UPDATE model_versions SET comparison = ?, compared_by = ?, compared_at = ? WHERE name = ? AND version = ?",
        (json.dumps(kept), who, now, name, version),
    )
    return {**kept, "summary": summary(c), "compared_by": who, "compared_at": now}


def view(stored: str | None, who: str | None, at: float | None) -> dict[str, Any] | None:
    """A stored comparison as the API returns it, with its summary; None when none was uploaded."""
    if stored is None:
        return None
    data = json.loads(stored)
    return {**data, "summary": summary(Comparison.model_validate(data)), "compared_by": who, "compared_at": at}
